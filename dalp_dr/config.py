"""Where dalp-dr keeps things. Flags override environment, environment overrides defaults.

* results directory: ``--results-dir`` / ``DALP_DR_RESULTS`` / ``./results``
* history store URL: ``--store`` / ``DALP_DR_STORE`` / ``sqlite:///<results dir>/history.sqlite``
* project directory (drills/, playbooks/, inventories/): ``--project-dir`` /
  ``DALP_DR_PROJECT`` / the current directory when it has ``playbooks/``, else the checkout
  this package was installed from.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    results_dir: Path
    store_url: str
    project_dir: Path


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
    return Settings(results_dir=results, store_url=url, project_dir=_project_dir(project_dir))
