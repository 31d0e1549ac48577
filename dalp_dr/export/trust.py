"""The keys a bundle verifier trusts, and where that trust comes from.

A bundle proves something only when it is signed by a key the verifier already trusts
(:class:`Trust`, built by the CLI): ``--public-key FILE`` or ``--fingerprint SHA256:...``
(one key each), or by default the local history's key directory: its public key
(``<key dir>/signing-key.pub.pem``) and every key ``keys init --force`` replaced
(``<key dir>/retired/*.pem``), so a bundle signed before a key rotation still verifies. The
key a bundle carries only tells *who* signed it, never whom to trust.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from dalp_dr.errors import ConfigError, Flag, HintKey, InvalidInput
from dalp_dr.export import keys
from dalp_dr.export.bundle_format import printable

log = logging.getLogger(__name__)

KEY_FILE_CAP = 16 << 10
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


class TrustedKey(BaseModel, frozen=True):
    """One key the verifier trusts."""

    fingerprint: str
    """SHA256:... of the key"""
    public_key_pem: bytes | None = None
    """the key itself when known (the signature is then checked with it alone)"""
    source: str
    """where this key comes from, for the report"""

    @classmethod
    def from_file(cls, path: Path, field: str, source: str) -> TrustedKey:
        key = load_public(read_key_file(path, field), str(path))
        return cls(fingerprint=keys.fingerprint(key), public_key_pem=keys.public_pem(key),
                   source=source)


class Trust(BaseModel, frozen=True):
    """The keys the verifier trusts and where that trust comes from."""

    trusted: tuple[TrustedKey, ...]
    """empty when no trusted key is available; for a key directory, the current key first"""
    source: str
    """where the trust comes from, for the report (or why there is none)"""

    @property
    def fingerprint(self) -> str | None:
        """The first trusted key's fingerprint (a key directory's current key); None when no
        trusted key is available."""
        return self.trusted[0].fingerprint if self.trusted else None

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(k.fingerprint for k in self.trusted)

    def describe(self) -> str:
        """'trusted key SHA256:... (source)', or every trusted key with its source."""
        listed = ", ".join(f"{k.fingerprint} ({k.source})" for k in self.trusted)
        return f"trusted key{'s' if len(self.trusted) > 1 else ''} {listed}"

    @classmethod
    def from_public_key(cls, path: Path) -> Trust:
        source = f"--public-key {path}"
        return cls(trusted=(TrustedKey.from_file(path, "--public-key", source),), source=source)

    @classmethod
    def from_fingerprint(cls, value: str) -> Trust:
        text = value.strip().rstrip("=")
        if not _FINGERPRINT.fullmatch(text):
            raise InvalidInput(f"'{printable(value)}' is not a key fingerprint",
                               flag=Flag.FINGERPRINT, hint_key=HintKey.FINGERPRINT_FORMAT)
        return cls(trusted=(TrustedKey(fingerprint=text, source="--fingerprint"),),
                   source="--fingerprint")

    @classmethod
    def from_key_dir(cls, directory: Path) -> Trust:
        """The local history's own public key, if there is one, and every key it replaced
        (``keys init --force`` keeps them in ``<key dir>/retired/``)."""
        path = directory / keys.PUBLIC
        found: dict[str, TrustedKey] = {}
        if path.exists():
            current = TrustedKey.from_file(path, "--keys", f"local key {path}")
            found[current.fingerprint] = current
        for key in _retired(directory):
            found.setdefault(key.fingerprint, key)
        where = directory / keys.RETIRED
        if not found:
            source = f"no trusted key: {path} does not exist"
        elif not path.exists():
            source = f"{len(found)} retired key(s) in {where} ({path} does not exist)"
        elif len(found) > 1:
            source = f"local key {path} and {len(found) - 1} retired key(s) in {where}"
        else:
            source = f"local key {path}"
        return cls(trusted=tuple(found.values()), source=source)


def _retired(directory: Path) -> list[TrustedKey]:
    """The public keys ``keys init --force`` replaced, in name order; one that cannot be
    read is left out (with a warning), as signed checkpoints leave it out."""
    where = directory / keys.RETIRED
    found: list[TrustedKey] = []
    for path in sorted(where.glob("*.pem")) if where.is_dir() else []:
        try:
            found.append(TrustedKey.from_file(path, "--keys", f"retired key {path}"))
        except (ConfigError, InvalidInput) as exc:
            log.warning("ignoring the retired key %s: %s", path, exc)
    return found


def load_public(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        return keys.load_public(data, source)
    except UnsupportedAlgorithm as exc:  # a PEM key of a kind cryptography cannot load
        raise InvalidInput(f"not an Ed25519 public key: {exc}", source=source) from None


def read_key_file(path: Path, field: str) -> bytes:
    try:
        if not path.is_file():
            raise ConfigError(f"{path} is not a file", field=field)
        if path.stat().st_size > KEY_FILE_CAP:
            raise ConfigError(f"{path} is too large to be a public key", field=field)
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", field=field) from None
