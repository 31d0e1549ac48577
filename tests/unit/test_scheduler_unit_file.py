"""The shipped systemd unit (playbooks/scheduler/) renders with the install playbook's
defaults into a unit systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "scheduler" / "install.yml"


def render(**overrides: str) -> str:
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    variables = {k: v for k, v in play["vars"].items() if isinstance(v, str)}
    variables.update(dalp_dr_bin=str(Path(sys.executable).parent / "dalp-dr"), **overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(3):  # vars that refer to other vars
        variables = {k: env.from_string(v).render(**variables) for k, v in variables.items()}
    template = (ROOT / "playbooks" / "scheduler" / "templates" /
                "dalp-dr-scheduler.service.j2").read_text()
    return env.from_string(template).render(**variables)


def test_the_unit_runs_the_scheduler_with_the_playbook_defaults() -> None:
    unit = render()
    assert f"ExecStart={Path(sys.executable).parent / 'dalp-dr'} scheduler run --drills " \
           "/opt/dalp-dr/drills --grace 1h --lease-ttl 6s" in unit
    assert "EnvironmentFile=/etc/dalp-dr/scheduler.env" in unit
    assert "KillMode=mixed" in unit and "TimeoutStopSec=20min" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    good = tmp_path / "dalp-dr-scheduler.service"
    good.write_text(render(dalp_dr_user="root", dalp_dr_group="root"))
    proc = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and "dalp-dr-scheduler" not in proc.stderr, proc.stderr
    broken = tmp_path / "dalp-dr-broken.service"
    broken.write_text(good.read_text().replace("Type=simple", "Type=sometimes"))
    proc = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                          text=True, check=False)
    assert "Failed to parse service type" in proc.stderr  # the check reads our unit
