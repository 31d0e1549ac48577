"""Exports and bundles from a real SQLite history with evidence files on disk: periods and
filters, CSV and coverage content, the signed bundle and every way to break it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr import integrity
from dalp_dr.errors import InvalidInput, TamperedHistory
from dalp_dr.export import bundle, keys, records
from dalp_dr.export.verify import Trust, verify_bundle
from dalp_dr.history import open_store
from dalp_dr.results import Outcome
from dalp_dr.spec import Topology
from tests.factories import make_run, record_runs, select, signed_bundle

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "end", "expected"), [
    ("2026Q3", False, datetime(2026, 7, 1, tzinfo=UTC)),
    ("2026Q3", True, datetime(2026, 10, 1, tzinfo=UTC)),
    ("2026q4", True, datetime(2027, 1, 1, tzinfo=UTC)),
    ("2026-07-01", True, datetime(2026, 7, 2, tzinfo=UTC)),
    ("2026-07-01T03:00:00+02:00", False, datetime(2026, 7, 1, 1, tzinfo=UTC)),
])
def test_period_bounds(text: str, end: bool, expected: datetime) -> None:
    assert records.parse_bound(text, end=end, field="--from") == expected


def test_a_bad_or_inverted_period_is_invalid_input(history: str) -> None:
    with pytest.raises(InvalidInput, match="not a quarter, date or time"):
        records.parse_bound("last spring", end=False, field="--from")
    with pytest.raises(InvalidInput, match="inverted"):
        select(history, start=datetime(2026, 7, 1, tzinfo=UTC),
               end=datetime(2026, 4, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="hot-warm-failvoer: not in the history"):
        select(history, drills=("hot-warm-failvoer",))


def test_period_and_filters_select_records(history: str) -> None:
    q2_q3 = select(history, start=records.parse_bound("2026Q2", end=False, field="f"),
                   end=records.parse_bound("2026Q3", end=True, field="t"))
    assert [r.result.run_id[-6:] for r in q2_q3.records] == ["bbbbbb", "cccccc"]
    assert [e.run_id[-6:] for e in q2_q3.segment] == ["bbbbbb", "cccccc", "dddddd"]
    cold = select(history, topology=Topology.HOT_COLD)
    assert [r.result.drill for r in cold.records] == ["hot-cold-restore"]


def test_csv_and_coverage_say_what_auditors_need(history: str) -> None:
    everything = select(history)
    rows = list(csv.DictReader(io.StringIO(bundle.to_csv(everything))))
    assert len(rows) == 4
    missed = rows[1]
    assert (missed["outcome"], missed["recovery_time_s"], missed["rto_status"],
            missed["rto_margin_s"]) == ("missed", "45.0", "missed", "-15.0")
    assert missed["phase_timings"] == "preflight=2.000;inject=1.000"
    assert len(missed["record_sha256"]) == 64 and missed["evidence_files"] == "2"
    matrix = records.coverage(everything, ["hot-warm-failover", "hot-hot-site-loss"])
    c = records.Coverage
    assert matrix["hot-warm-failover"] == {
        "2026Q1": {c.MET: 1}, "2026Q2": {c.MISSED_OBJECTIVES: 1},
        "2026Q3": {c.NOT_RUN: 0}, "2026Q4": {c.MISSED_SCHEDULE: 1}}
    assert list(matrix["hot-hot-site-loss"].values()) == [{c.NOT_RUN: 0}] * 4
    summary = records.summary(everything)
    assert summary["outcomes"] == {"missed": 1, "missed_schedule": 1, "passed": 2}
    assert summary["passed_share"] == round(2 / 3, 4)  # the missed schedule did not run
    assert "SOC 2 A1.3" in {r["reference"] for r in summary["requirements"]}


def test_the_html_report_is_self_contained(history: str) -> None:
    from dalp_dr.export.report import to_html

    page = to_html(select(history), ["hot-warm-failover"])
    assert "default-src 'none'" in page and "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    assert page.count("<figure class='chart'") == 4  # 2 drills x (recovery, data loss)
    assert "id='coverage-matrix'" in page and "missed schedule" in page


def test_a_bundle_verifies_and_every_kind_of_tampering_is_named(history: str,
                                                                tmp_path: Path) -> None:
    archive, public = signed_bundle(history, tmp_path)
    trusted = Trust.from_public_key(public)
    report = verify_bundle(archive, trusted)
    assert report.ok and report.records == 4, report.problem
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    assert (unpacked / "evidence" / "20260401T030000Z-bbbbbb" / "summary.txt").is_file()

    def broken(edit: object) -> str:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(unpacked, copy)
        edit(copy)  # type: ignore[operator]
        result = verify_bundle(copy, trusted)
        assert not result.ok
        return str(result.problem)

    assert "report.html: changed" in broken(
        lambda d: (d / "report.html").write_text("<html>edited</html>"))
    assert "evidence/20260115T030000Z-aaaaaa/summary.txt: changed" in broken(
        lambda d: (d / "evidence" / "20260115T030000Z-aaaaaa" / "summary.txt").write_text("x"))
    assert "extra.txt: unexpected member" in broken(lambda d: (d / "extra.txt").write_text(""))
    assert "evidence/20260115T030000Z-aaaaaa/extra.txt: not in the manifest" in broken(
        lambda d: (d / "evidence" / "20260115T030000Z-aaaaaa" / "extra.txt").write_text(""))
    assert "signature does not match" in broken(
        lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text().replace('"records": 4', '"records": 3')))

    # an attacker edits a record and re-signs everything with their own key, put in the
    # bundle: the signature checks out against it, but it is not the trusted key
    def forge(d: Path) -> None:
        document = json.loads((d / "records.json").read_text())
        document["records"][1]["result"]["outcome"] = "passed"
        (d / "records.json").write_text(json.dumps(document))
        keydir = tmp_path / "attacker"
        keys.init(keydir, force=True)
        files = json.loads((d / "manifest.json").read_text())
        files["files"]["records.json"] = integrity.file_sha256(d / "records.json")
        files["files"]["public-key.pem"] = integrity.file_sha256(d / "public-key.pem")
        (d / "public-key.pem").write_bytes((keydir / keys.PUBLIC).read_bytes())
        files["files"]["public-key.pem"] = integrity.file_sha256(d / "public-key.pem")
        manifest = json.dumps(files).encode()
        (d / "manifest.json").write_bytes(manifest)
        (d / "manifest.json.sig").write_bytes(keys.sign(keys.load_private(keydir), manifest))

    forged_problem = broken(forge)
    attacker = keys.fingerprint(keys.load_private(tmp_path / "attacker").public_key())
    assert "signed by a key that is not the trusted one" in forged_problem
    assert attacker in forged_problem and str(trusted.fingerprint) in forged_problem
    forged = tmp_path / "forged"
    shutil.copytree(unpacked, forged)
    forge(forged)
    # without a trusted key, the key that came with it is never enough
    untrusted = verify_bundle(forged, Trust.from_key_dir(tmp_path / "no-such-keys"))
    assert not untrusted.ok and not untrusted.authentic
    assert "signer NOT trusted" in str(untrusted.problem)


def test_a_tampered_history_is_not_exported(history: str) -> None:
    path = history.removeprefix("sqlite://")
    db = sqlite3.connect(path)
    db.execute("update runs set result_json = replace(result_json, '45.0', '4.5')"
               " where run_id = '20260401T030000Z-bbbbbb'")
    db.commit()
    db.close()
    store = open_store(history, results_dir=Path(path).parent)
    try:
        with pytest.raises(TamperedHistory, match="20260401T030000Z-bbbbbb"):
            records.verified_selection(store, None, records.Query())
    finally:
        store.close()


def test_keys_init_refuses_to_overwrite_and_keeps_the_private_key_private(
        tmp_path: Path) -> None:
    from dalp_dr.errors import ConfigError

    private, public, fingerprint = keys.init(tmp_path / "k")
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert fingerprint.startswith("SHA256:")
    with pytest.raises(ConfigError, match="already exists"):
        keys.init(tmp_path / "k")
    private.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        keys.load_private(tmp_path / "k")


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DALP_DR_RESULTS": str(tmp_path / "results"), "DALP_DR_KEYS": str(tmp_path / "k"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_acceptance_keys_export_verify_and_one_edited_byte(history: str,
                                                           tmp_path: Path) -> None:
    assert cli(tmp_path, "keys", "init").returncode == 0
    unpinned = cli(tmp_path, "export", "--from", "2026Q1", "--bundle",
                   str(tmp_path / "w.tar.gz"))  # sealed before the key existed: fail closed
    assert unpinned.returncode == 1 and "history checkpoint --sign" in unpinned.stderr, \
        unpinned.stderr
    assert cli(tmp_path, "history", "checkpoint", "--sign").returncode == 0
    made = cli(tmp_path, "export", "--from", "2026Q1", "--bundle", str(tmp_path / "x.tar.gz"))
    assert made.returncode == 0, made.stderr
    checked = cli(tmp_path, "export", "verify", str(tmp_path / "x.tar.gz"))
    assert checked.returncode == 0, checked.stderr
    assert "bundle intact: 4 records" in checked.stdout
    assert cli(tmp_path, "history", "verify").returncode == 0
    for args, message in ((("export", "--from", "2026Q3", "--to", "2026Q1"), "inverted"),
                          (("export", "--topology", "hot-lukewarm"), "unknown topology"),
                          (("export", "--from", "soon"), "not a quarter"),
                          (("export", "--bundle", str(tmp_path / "y.tar.gz"), "--keys",
                            str(tmp_path / "nokeys")), "keys init")):
        bad = cli(tmp_path, *args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    # one byte of one record in the SQLite store
    path = Path(history.removeprefix("sqlite://"))
    db = sqlite3.connect(path)
    db.execute("update runs set operator = 'schedulfr' where run_id = '20260701T030000Z-cccccc'")
    db.commit()
    db.close()
    tampered = cli(tmp_path, "history", "verify")
    assert tampered.returncode == 1
    assert "20260701T030000Z-cccccc" in tampered.stderr and "operator" in tampered.stderr


def test_history_verify_names_a_changed_evidence_file_and_a_deleted_record(
        history: str, tmp_path: Path) -> None:
    evidence = tmp_path / "results" / "20260401T030000Z-bbbbbb" / "summary.txt"
    evidence.write_text("hot-warm-failover passed\n")  # the run had missed its objectives
    changed = cli(tmp_path, "history", "verify")
    assert changed.returncode == 1
    assert "20260401T030000Z-bbbbbb: evidence file changed" in changed.stderr
    assert "summary.txt" in changed.stderr
    assert cli(tmp_path, "history", "verify", "--no-evidence").returncode == 0
    evidence.unlink()
    assert "evidence file missing" in cli(tmp_path, "history", "verify").stderr

    db = sqlite3.connect(history.removeprefix("sqlite://"))
    db.execute("delete from runs where run_id = '20260115T030000Z-aaaaaa'")
    db.execute("delete from chain where run_id = '20260115T030000Z-aaaaaa'")
    db.commit()
    db.close()
    deleted = cli(tmp_path, "history", "verify", "--no-evidence")
    assert deleted.returncode == 1
    assert "chain entry #1 is missing" in deleted.stderr


def test_history_verify_names_reordered_records(history: str, tmp_path: Path) -> None:
    db = sqlite3.connect(history.removeprefix("sqlite://"))
    db.execute("update chain set seq = 100 where seq = 2")
    db.execute("update chain set seq = 2 where seq = 3")
    db.execute("update chain set seq = 3 where seq = 100")
    db.commit()
    db.close()
    swapped = cli(tmp_path, "history", "verify")
    assert swapped.returncode == 1
    assert "#2 run 20260701T030000Z-cccccc" in swapped.stderr
    assert "does not link to the entry before it" in swapped.stderr


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_export_never_replaces_what_is_not_a_regular_file(history: str, tmp_path: Path,
                                                         kind: str) -> None:
    """``-o /dev/full`` once turned the device node into a file (written beside it, renamed
    over it): a FIFO, a link or a directory is left alone, exit 2."""
    import os

    from dalp_dr.commands import main

    target, victim = tmp_path / "out.json", tmp_path / "victim.txt"
    victim.write_text("untouched")
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(victim)
    else:
        target.mkdir()
    results = str(tmp_path / "results")
    assert main(["--results-dir", results, "--store", history, "export", "--format", "json",
                 "-o", str(target)]) == 2
    assert victim.read_text() == "untouched"
    assert {"fifo": target.is_fifo(), "symlink": target.is_symlink(),
            "directory": target.is_dir()}[kind]


def test_export_csv_cells_from_the_store_are_data_not_formulas(tmp_path: Path) -> None:
    """The operator, owner and message come from the environment and the targets: a cell a
    spreadsheet would run stays text (the margin, a negative number, stays a number)."""
    url = f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}"
    made = make_run(tmp_path, "20260401T030000Z-ffffff", "hot-warm-failover",
                    datetime(2026, 4, 1, 3, tzinfo=UTC), Outcome.MISSED, 45.0)
    record_runs(url, [made.model_copy(update={
        "operator": "=HYPERLINK(\"http://x\")", "owner": "@SUM(A1)",
        "message": "-1+cmd|' /C calc'!A0\rforged,row"})])
    rows = list(csv.DictReader(io.StringIO(bundle.to_csv(select(url)), newline="")))
    assert len(rows) == 1  # a carriage return in a message is inside its cell, not a row
    row = rows[0]
    assert (row["operator"], row["owner"], row["message"]) == (
        "'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-1+cmd|' /C calc'!A0\rforged,row")
    assert row["rto_margin_s"] == "-15.0"
