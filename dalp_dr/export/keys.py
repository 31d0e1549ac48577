"""The Ed25519 key that signs export bundles (``cryptography``).

``dalp-dr keys init`` writes ``signing-key.pem`` (PKCS#8, file mode 0600) and
``signing-key.pub.pem`` (the public key to hand to auditors) into the key directory:
``--keys DIR`` / ``DALP_DR_KEYS`` / ``~/.config/dalp-dr``. A passphrase in
``DALP_DR_KEY_PASSPHRASE`` encrypts the private key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dalp_dr import config
from dalp_dr.errors import ConfigError, Flag, HintKey, InvalidInput

PRIVATE = "signing-key.pem"
PUBLIC = "signing-key.pub.pem"
REVOKED = "revoked"
"""public keys revoked by ``keys init --force --revoke`` (compromised): never trusted; what
they signed is ignored, named as such"""
RETIRED = "retired"
"""public keys replaced by ``keys init --force``: checkpoints and bundles they signed still
verify"""


def key_dir(explicit: str | None = None) -> Path:
    return config.keys_dir(explicit)


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def init(directory: Path, force: bool = False, revoke: bool = False
         ) -> tuple[Path, Path, str]:
    """Create a new key pair. Refuses to replace an existing key unless ``force``; the
    replaced public key is kept in ``retired/`` (still trusted for what it signed) unless
    ``revoke`` (a compromised key: removed, trusted no more)."""
    private_path, public_path = directory / PRIVATE, directory / PUBLIC
    if private_path.exists() and not force:
        raise ConfigError(f"a signing key already exists at {private_path}",
                          flag=Flag.KEYS_INIT, hint_key=HintKey.REPLACE_SIGNING_KEY)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if public_path.is_file():  # replaced, not forgotten: what it signed still verifies
        old = load_public(public_path.read_bytes(), str(public_path))
        kept = directory / (REVOKED if revoke else RETIRED)
        kept.mkdir(exist_ok=True, mode=0o700)
        name = fingerprint(old).removeprefix("SHA256:").replace("/", "_").replace("+", "-")
        os.replace(public_path, kept / f"{name}.pem")
    key = Ed25519PrivateKey.generate()
    secret = config.key_passphrase()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret
        else serialization.NoEncryption())
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)
    tmp = private_path.with_name(f".{PRIVATE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, private_path)
    public_path.write_bytes(public_pem(key.public_key()))
    os.chmod(public_path, 0o644)
    return private_path, public_path, fingerprint(key.public_key())


def load_private(directory: Path) -> Ed25519PrivateKey:
    path = directory / PRIVATE
    if not path.is_file():
        raise ConfigError(f"no signing key at {path}", flag=Flag.KEYS,
                          hint_key=HintKey.CREATE_SIGNING_KEY)
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode "
                          f"{path.stat().st_mode & 0o777:o})", flag=Flag.KEYS,
                          hint=f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(),
                                                 password=config.key_passphrase())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc}", flag=Flag.KEYS,
                          hint="set DALP_DR_KEY_PASSPHRASE if it is encrypted") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", flag=Flag.KEYS)
    return key


def load_public(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidInput(f"not a PEM public key: {exc}", source=source) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("not an Ed25519 public key", source=source)
    return key


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return base64.b64encode(key.sign(data)) + b"\n"


def signature_ok(public: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature.strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True
