"""The HTML report as an auditor's document, from a sealed sample history of mixed outcomes
over two years with a reviewer's approval: what it says as text (on paper, SVG tooltips are
lost), what it does not claim (a signature it lacks), the coverage cells keeping every
outcome apart, and ``export``'s output contract (``-o FORMAT|FILE``, ``--format`` alias, PDF
only to a file, a clear exit 2 without Chromium)."""

from __future__ import annotations

import json
import re
import tarfile
from html import unescape
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.export import bundle, keys, records
from dalp_dr.export.report import to_html
from tests.factories import AUDITOR_RUN_ID, FAILURE_REASON, fill_auditor_history, select

DRILLS = ["hot-warm-failover", "hot-cold-restore"]


@pytest.fixture
def sample(tmp_path: Path) -> str:
    return fill_auditor_history(tmp_path)


def text_of(page: str) -> str:
    """What a reader sees on paper: no SVG (its tooltips are not printed), no tags."""
    page = re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    words = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([,.:;])", r"\1", words)


def test_the_cover_names_the_periods_dates_and_a_standalone_export_says_it_is_unsigned(
        sample: str) -> None:
    whole = text_of(to_html(select(sample), DRILLS))
    assert "Period: 2025-10-15 to 2026-11-27 (UTC)" in whole  # first run .. generated
    assert "from the start" not in whole
    assert "Not signed." in whole and "signed with the Ed25519 key" not in whole
    assert "the bundle this report came with is signed" not in whole
    q = select(sample, start=records.parse_bound("2026Q2", end=False, field="--from"),
               end=records.parse_bound("2026Q3", end=True, field="--to"))
    assert "Period: 2026-04-01 to 2026-09-30 (UTC)" in text_of(to_html(q, DRILLS))


def test_a_bundles_report_names_its_signer_and_links_evidence_inside_the_bundle(
        sample: str, tmp_path: Path) -> None:
    keys.init(tmp_path / "keys")
    target = tmp_path / "b.tar.gz"
    _path, fingerprint = bundle.write_bundle(select(sample), target, tmp_path / "keys", DRILLS)
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        report = tar.extractfile("report.html").read().decode()  # type: ignore[union-attr]
    whole = text_of(report)
    assert f"signed with the Ed25519 key {fingerprint}" in whole and "Not signed" not in whole
    links = re.findall(r"href='([^']+)'", report)
    assert links and all(not link.startswith(("/", "file:", "http")) for link in links)
    assert f"evidence/{AUDITOR_RUN_ID}/summary.txt" in links
    assert {unescape(link) for link in links} <= names  # every link resolves in the bundle


def test_methodology_targets_verdicts_margins_reasons_and_timeline_are_text(
        sample: str) -> None:
    whole = text_of(to_html(select(sample), DRILLS))
    for term in ("Methodology", "Recovery time", "Write outage", "RTT (return to target)",
                 "Data-loss window", "Resolution", "unknown", "Verdicts"):
        assert f" {term} " in whole, term
    assert "Targets: RPO 5.000s, RTO 30.000s" in whole
    assert "missed (-11.000s)" in whole and "met (+5.000s)" in whole  # RTO and RPO margins
    assert f"Reason: {FAILURE_REASON}" in whole  # the failed run, on paper
    assert "+33.000s after the fault: new primary promoted (patroni)" in whole
    assert "schedule by alice" in whole  # the operator


def test_an_approval_is_shown_with_its_run(sample: str) -> None:
    whole = text_of(to_html(select(sample), DRILLS))
    assert ("Approved: by Jane Doe (internal audit) at 2026-04-03 09:00:00 UTC: "
            "\u201cRTO miss reviewed; remediation tracked in CHG-1234\u201d") in whole
    assert whole.count("Approved:") == 1


def test_coverage_cells_list_every_outcome_worst_first_and_name_each_state(
        sample: str) -> None:
    c = records.Coverage
    matrix = records.coverage(select(sample), DRILLS)
    assert matrix["hot-warm-failover"]["2026Q2"] == {
        c.MISSED_OBJECTIVES: 1, c.INCONCLUSIVE: 1, c.MET: 1}
    assert list(matrix["hot-warm-failover"]["2026Q2"]) == [
        c.MISSED_OBJECTIVES, c.INCONCLUSIVE, c.MET]
    assert matrix["hot-cold-restore"]["2026Q1"] == {c.ABORTED: 1, c.PREFLIGHT_FAILED: 1}
    assert matrix["hot-warm-failover"]["2026Q3"] == {c.FAILED: 1}
    document = json.loads(bundle.to_json(select(sample), DRILLS))["export"]
    assert document["coverage"]["hot-cold-restore"]["2026Q1"] == [
        {"state": "aborted", "runs": 1}, {"state": "preflight failed", "runs": 1}]
    assert document["approvals"][AUDITOR_RUN_ID][0]["reviewer"] == "Jane Doe (internal audit)"
    page = to_html(select(sample), DRILLS)
    cell = re.search(r"<th>hot-warm-failover</th>(.*?)</tr>", page)
    assert cell is not None and "missed objectives<br>inconclusive<br>met" in cell.group(1)


def test_charts_have_dated_axes_with_the_year_a_labelled_log_scale_and_target_lines(
        sample: str) -> None:
    page = to_html(select(sample), DRILLS)
    charts = re.findall(r"<figure class='chart'.*?</figure>", page, flags=re.S)
    assert len(charts) == 4
    recovery = charts[2]  # hot-warm-failover's recovery time (drills sorted)
    assert ">2025-10-15</text>" in recovery and ">log scale</text>" in recovery
    assert "stroke-dasharray='6 4'" in recovery and ">RTO 30.000s</text>" in recovery
    assert "viewBox=" in recovery  # scales to the page


def test_data_from_the_history_is_escaped(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from dalp_dr.results import Outcome
    from tests.factories import make_run, record_runs

    url = f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}"
    run = make_run(tmp_path, "20260101T000000Z-x", "d", datetime(2026, 1, 1, tzinfo=UTC),
                   Outcome.FAILED, None)
    record_runs(url, [run.model_copy(update={"message": "<img src=x onerror=alert(1)>"})])
    page = to_html(select(url), ["d"])
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.fixture
def exporting(sample: str, tmp_path: Path, configured: Path) -> Path:
    return tmp_path


def test_export_writes_the_format_its_file_names(exporting: Path) -> None:
    assert main(["export", "-o", str(exporting / "r.html")]) == 0
    assert (exporting / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["export", "--format", "csv", "-o", str(exporting / "r.csv")]) == 0
    assert (exporting / "r.csv").read_text().startswith("run_id,")


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "html", "-o", "r.json"], "--format html disagrees with -o r.json"),
    (["-o", "pdf"], "a PDF is written to a file"),
    (["-o", "table"], "does not write table"),
    (["--format", "xml"], "unknown format 'xml'"),
])
def test_export_refuses_an_output_it_cannot_write(exporting: Path, args: list[str],
                                                  message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (exporting / "r.json").exists()


def test_a_pdf_without_chromium_is_a_clear_exit_2_naming_it(
        exporting: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(exporting / "nothing-here"))
    assert main(["export", "-o", str(exporting / "r.pdf")]) == 2
    assert "-o: printing to PDF needs headless Chromium, and 'chromium' is not installed" \
        in capsys.readouterr().err
    assert not (exporting / "r.pdf").exists()


def test_history_approve_seals_an_approval_the_export_shows(
        exporting: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["history", "approve", "20260402T030000Z-r0003", "--reviewer", "Bob",
                 "--note", "checked", "-o", "json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["run_id"], done["reviewer"], done["note"]) == (
        "20260402T030000Z-r0003", "Bob", "checked")
    assert done["chain_seq"] == 11  # nine runs and the sample's approval before it
    assert main(["history", "verify"]) == 0
    assert main(["export", "-o", str(exporting / "r.html")]) == 0
    assert "Approved: by Bob at" in text_of((exporting / "r.html").read_text())


def test_history_approve_refuses_an_unknown_run_or_an_empty_reviewer(
        exporting: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "approve", "nope", "--reviewer", "Bob", "--note", "x"]) == 2
    assert "no run 'nope' in the history" in capsys.readouterr().err
    assert main(["history", "approve", "20260402", "--reviewer", " ", "--note", "x",
                 "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "--reviewer"
