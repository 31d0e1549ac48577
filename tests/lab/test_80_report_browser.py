"""The HTML report in a real browser: headless Chromium (Debian `chromium`) renders the page
the CLI exported, takes a screenshot, and logs no console message (the page has no script;
any message means a blocked fetch or a broken document). A control page with one outside
image proves the console check can fail."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.history import open_store
from dalp_dr.results import Outcome
from tests.factories import make_run
from tests.lab.helpers import ROOT

pytestmark = pytest.mark.xdist_group("report-browser")

CHROMIUM = shutil.which("chromium")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "Debian's chromium is required (.ci/bootstrap --test installs it)"
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_report_renders_its_charts_and_matrix_without_console_errors(
        tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}")
    quarters = [(1, Outcome.PASSED, 1.4), (4, Outcome.MISSED, 41.0), (7, Outcome.PASSED, 2.2),
                (10, Outcome.PASSED, 0.8)]
    for i, (month, outcome, recovery) in enumerate(quarters):
        run = make_run(tmp_path, f"2026{month:02d}01T030000Z-r{i:05d}", "hot-warm-failover",
                       datetime(2026, month, 1, 3, tzinfo=UTC), outcome, recovery)
        store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                    json.dumps({"name": run.drill}))
        store.finish(run)
    store.close()
    report = tmp_path / "report.html"
    exported = subprocess.run(
        [sys.executable, "-m", "dalp_dr", "--results-dir", str(tmp_path / "results"), "export",
         "--from", "2026Q1", "--to", "2026Q4", "--format", "html", "-o", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert exported.returncode == 0, exported.stderr

    shot = tmp_path / "report.png"
    taken = chromium("--window-size=1280,2200", f"--screenshot={shot}", report.as_uri())
    assert taken.returncode == 0, taken.stderr
    assert png_size(shot) == (1280, 2200)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    assert console_messages(taken.stderr) == []

    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0 and console_messages(dom.stderr) == []
    assert dom.stdout.count("<figure class=\"chart\"") == 2  # recovery and data-loss trends
    assert dom.stdout.count("<circle") == 8  # one point per run per chart
    assert "id=\"coverage-matrix\"" in dom.stdout
    assert dom.stdout.count("class=\"met\"") == 3 and "missed objectives" in dom.stdout

    control = tmp_path / "control.html"
    control.write_text(report.read_text().replace(
        "<h1>", "<img src='https://example.invalid/x.png'><h1>"))
    blocked = chromium("--dump-dom", control.as_uri())
    assert any("example.invalid" in m for m in console_messages(blocked.stderr))
