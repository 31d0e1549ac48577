"""Where dalp-dr keeps things. Flags override environment, environment overrides defaults.

* results directory: ``--results-dir`` / ``DALP_DR_RESULTS`` / ``./results``
* history store URL: ``--store`` / ``DALP_DR_STORE`` / ``sqlite:///<results dir>/history.sqlite``
* environment drill-lock lease: ``DALP_DR_LOCK_TTL`` (a duration) / 60s
* project directory (drills/, playbooks/, inventories/): ``--project-dir`` /
  ``DALP_DR_PROJECT`` / the current directory when it has ``playbooks/``, else the checkout
  this package was installed from.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dalp_dr.durations import parse_duration
from dalp_dr.errors import ConfigError


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    results_dir: Path
    store_url: str
    project_dir: Path
    lock_ttl: float = 60.0
    """seconds an environment's drill lock outlives its holder's last renewal"""


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
                  project_dir: str | None = None) -> Settings:
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
                    lock_ttl=lock_ttl)
