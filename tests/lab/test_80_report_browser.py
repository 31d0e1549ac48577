"""The HTML report in a real browser: headless Chromium (Debian `chromium`) renders the page
the CLI exported, takes a screenshot, and logs no console message (the page has no script;
any message means a blocked fetch or a broken document). A control page with one outside
image proves the console check can fail.

The auditor's document: the sample history (mixed outcomes over two years, an approval) is
exported to HTML and printed to PDF by the CLI; the PDF is A4 and its text layer holds the
period's dates, targets, verdicts with margins, a failure reason, the approval and the
methodology; at 1200 px nothing reaches the window's right edge (a control page with one
over-wide element proves that check can fail)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import unicodedata
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr.history import open_store
from dalp_dr.results import Outcome
from tests.factories import AUDITOR_RUN_ID, FAILURE_REASON, fill_auditor_history, make_run
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


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) bytes of an 8-bit, non-interlaced PNG (what
    Chromium writes); no imaging library needed."""
    data = path.read_bytes()
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    channels = 3 if colour == 2 else 4
    chunks, i = [], 8
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"IDAT":
            chunks.append(data[i + 8:i + 8 + length])
        i += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) \
                    & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def right_edge_is_background(path: Path, band: int = 24) -> bool:
    """Every pixel of the rightmost ``band`` columns is white: nothing reached the edge."""
    width, _height, rows = png_pixels(path)
    channels = len(rows[0]) // width
    for row in rows:
        for x in range(width - band, width):
            if row[x * channels:x * channels + 3] != b"\xff\xff\xff":
                return False
    return True


AT_1200_PX = ("--window-size=1200,9000", "--force-device-scale-factor=0.5")
"""a 1200 px wide layout, the screenshot at half scale (a quarter of the pixels to read)"""


def export(results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dalp_dr", "--results-dir", str(results),
                           "export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=False)


def test_the_auditors_document_on_screen_and_on_a4_paper(tmp_path: Path) -> None:
    from pypdf import PdfReader

    fill_auditor_history(tmp_path)
    results = tmp_path / "results"
    page, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    assert export(results, "-o", str(page)).returncode == 0
    printed = export(results, "--format", "pdf", "-o", str(pdf))
    assert printed.returncode == 0, printed.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")

    reader = PdfReader(pdf)
    assert 3 <= len(reader.pages) <= 30
    for sheet in reader.pages:  # A4: 595 x 842 points
        assert abs(float(sheet.mediabox.width) - 595.3) < 1.5
        assert abs(float(sheet.mediabox.height) - 841.9) < 1.5
    text = unicodedata.normalize("NFKC", "\n".join(p.extract_text() for p in reader.pages))
    flat = " ".join(text.split())
    for wanted in ("Period: 2025-10-15 to", "Not signed.", "Methodology", "Recovery time",
                   "Data-loss window", "Targets: RPO 5.000s, RTO 30.000s",
                   "missed (-11.000s)", "met (+5.000s)", FAILURE_REASON,
                   "preflight failed", "inconclusive", "Jane Doe (internal audit)",
                   "new primary promoted"):
        assert wanted in flat, wanted
    assert AUDITOR_RUN_ID in "".join(text.split())  # wrapped, never cut off the page

    shot = tmp_path / "report.png"
    taken = chromium(*AT_1200_PX, f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and console_messages(taken.stderr) == []
    assert png_size(shot) == (600, 4500)
    assert right_edge_is_background(shot)  # the runs tables fit 1200 px

    control = tmp_path / "control.html"
    control.write_text(page.read_text().replace(
        "<table class='runs'>", "<table class='runs' style='min-width:1300px'>", 1))
    wide = tmp_path / "control.png"
    assert chromium(*AT_1200_PX, f"--screenshot={wide}",
                    control.as_uri()).returncode == 0
    assert not right_edge_is_background(wide)
