"""Where dalp-dr keeps things. Flags override environment, environment overrides defaults.

* results directory: ``--results-dir`` / ``DALP_DR_RESULTS`` / ``./results``
* history store URL: ``--store`` / ``DALP_DR_STORE`` / ``sqlite:///<results dir>/history.sqlite``
* environment drill-lock lease: ``DALP_DR_LOCK_TTL`` (a duration) / 60s
* project directory (drills/, playbooks/, inventories/): ``--project-dir`` /
  ``DALP_DR_PROJECT`` / the current directory when it has ``playbooks/``, else the checkout
  this package was installed from.
* signing key directory (bundles and checkpoints): ``--keys`` / ``DALP_DR_KEYS`` /
  ``~/.config/dalp-dr``
* checkpoint witness: ``DALP_DR_WITNESS`` (``s3://bucket/prefix``, a bucket with Object
  Lock), ``DALP_DR_WITNESS_RETAIN_DAYS`` (2557, seven years), ``DALP_DR_WITNESS_LOCK_MODE``
  (GOVERNANCE or COMPLIANCE); ``DALP_DR_S3_ENDPOINT`` for another S3 API
* file modes: evidence, history and checkpoint files are the owner's alone (0600, 0700
  directories); ``DALP_DR_GROUP_ACCESS=1`` lets the owning group read them (0640, 0750)
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dalp_dr.durations import parse_duration
from dalp_dr.errors import ConfigError


class Witness(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    prefix: str
    retain_days: int = 2557
    lock_mode: str = "GOVERNANCE"
    endpoint_url: str | None = None
    region: str = "us-east-1"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    results_dir: Path
    store_url: str
    project_dir: Path
    lock_ttl: float = 60.0
    """seconds an environment's drill lock outlives its holder's last renewal"""
    keys_dir: Path = Path.home() / ".config" / "dalp-dr"
    witness: Witness | None = None


def _witness() -> Witness | None:
    url = os.environ.get("DALP_DR_WITNESS")
    if not url:
        return None
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ConfigError(f"'{url}' is not an s3:// URL", source="DALP_DR_WITNESS",
                          hint="s3://bucket/prefix of a bucket with Object Lock")
    bucket, _, prefix = url[5:].partition("/")
    days_text = os.environ.get("DALP_DR_WITNESS_RETAIN_DAYS") or "2557"
    if not days_text.isdigit() or not 1 <= int(days_text) <= 36500:
        raise ConfigError(f"'{days_text}' is not a number of days (1-36500)",
                          source="DALP_DR_WITNESS_RETAIN_DAYS")
    mode = (os.environ.get("DALP_DR_WITNESS_LOCK_MODE") or "GOVERNANCE").upper()
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise ConfigError(f"'{mode}' is not an Object Lock mode",
                          source="DALP_DR_WITNESS_LOCK_MODE", hint="GOVERNANCE or COMPLIANCE")
    return Witness(bucket=bucket, prefix=prefix.strip("/"), retain_days=int(days_text),
                   lock_mode=mode, endpoint_url=os.environ.get("DALP_DR_S3_ENDPOINT") or None,
                   region=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def group_access() -> bool:
    """DALP_DR_GROUP_ACCESS: the owning group may read evidence, history and checkpoints."""
    return os.environ.get("DALP_DR_GROUP_ACCESS", "").lower() in ("1", "true", "yes")


def keys_dir(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("DALP_DR_KEYS")
    return Path(env) if env else Path.home() / ".config" / "dalp-dr"


def _project_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get("DALP_DR_PROJECT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "playbooks").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def load_settings(*, results_dir: str | None = None, store: str | None = None,
                  project_dir: str | None = None, keys: str | None = None) -> Settings:
    results = Path(results_dir or os.environ.get("DALP_DR_RESULTS") or "results").resolve()
    url = store or os.environ.get("DALP_DR_STORE") or f"sqlite:///{results / 'history.sqlite'}"
    lock_ttl = 60.0
    if os.environ.get("DALP_DR_LOCK_TTL"):
        try:
            lock_ttl = parse_duration(os.environ["DALP_DR_LOCK_TTL"]).total_seconds()
        except ValueError as exc:
            raise ConfigError(str(exc), source="DALP_DR_LOCK_TTL",
                              hint="a duration such as 60s or 5m") from None
        if lock_ttl < 3:
            raise ConfigError("must be at least 3s (the lock is renewed every third of it)",
                              source="DALP_DR_LOCK_TTL")
    return Settings(results_dir=results, store_url=url, project_dir=_project_dir(project_dir),
                    lock_ttl=lock_ttl, keys_dir=keys_dir(keys), witness=_witness())
