"""Evidence paths are data: a link planted among the evidence is never sealed or exported,
a path from the store never leads outside the results directory or the bundle, and what an
export writes is the owner's alone."""

from __future__ import annotations

import json
import sqlite3
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr import integrity
from dalp_dr.commands import main
from dalp_dr.export import keys
from tests.factories import record_configured, sealed_runs

RUN = "20260115T030000Z-aaaaaa"


@pytest.fixture
def base(configured: Path) -> Path:
    """The configured environment (tests/conftest.py) with a signing key."""
    keys.init(configured / "keys")
    return configured


def test_a_link_planted_among_the_evidence_is_neither_sealed_nor_exported(
        base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = sealed_runs(base, 1)
    evidence = base / "results" / RUN
    (evidence / "files").mkdir()
    (evidence / "files" / "key.pem").symlink_to(base / "keys" / keys.PRIVATE)
    record_configured(runs)
    conn = sqlite3.connect(base / "results" / "history.sqlite")
    sealed = json.loads(conn.execute("select evidence_json from chain").fetchone()[0])
    conn.close()
    assert sorted(sealed) == ["journal/0001-run.started.json", "summary.txt"]
    assert main(["export", "--bundle", str(base / "b.tar.gz")]) == 0
    with tarfile.open(base / "b.tar.gz") as tar:
        names = tar.getnames()
    assert f"evidence/{RUN}/summary.txt" in names
    assert not any(n.endswith("files/key.pem") for n in names)
    assert stat.S_IMODE((base / "b.tar.gz").stat().st_mode) == 0o600
    # a sealed file replaced by a link afterwards is named, not followed
    (evidence / "summary.txt").unlink()
    (evidence / "summary.txt").symlink_to(base / "keys" / keys.PRIVATE)
    capsys.readouterr()
    assert main(["history", "verify"]) == 1
    assert "replaced by a link" in capsys.readouterr().err


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("evidence_json", json.dumps({"../../keys/signing-key.pem": "0" * 64}),
     "escapes the run's directory"),
    ("result_json", None, "is not a run directory under the results directory"),
])
def test_a_path_from_the_store_never_leads_outside(base: Path, column: str,
                                                   value: str | None, expected: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    record_configured(sealed_runs(base, 1))
    # an attacker with the store (not the key) re-seals consistently, so only the path
    # guards stand between the forged path and the file system
    conn = sqlite3.connect(base / "results" / "history.sqlite")
    result_json, spec_json, evidence_json = conn.execute(
        "select r.result_json, r.spec_json, c.evidence_json from runs r join chain c"
        " using (run_id)").fetchone()
    if column == "evidence_json":
        evidence_json = value
    else:
        result = json.loads(result_json)
        result["evidence_dir"] = "../keys"
        result_json = json.dumps(result)
    entry = integrity.seal(1, RUN, result_json, spec_json, json.loads(evidence_json),
                           integrity.GENESIS, datetime.now(UTC))
    conn.execute("update runs set result_json = ?, evidence_dir = ?",
                 (result_json, integrity.relative_evidence(json.loads(result_json)[
                     "evidence_dir"])))
    conn.execute("update chain set record_digest = ?, evidence_json = ?, evidence_digest = ?,"
                 " digest = ?", (entry.record_digest, evidence_json, entry.evidence_digest,
                                 entry.digest))
    conn.commit()
    conn.close()
    problem = integrity.check_record(next(iter(_sealed(base))), base / "results")
    assert problem is not None and expected in problem.what
    capsys.readouterr()
    out = base / "out"
    assert main(["export", "--bundle", str(out)]) == 1
    assert "not exported" in capsys.readouterr().err
    assert not out.exists()


def _sealed(base: Path) -> list[integrity.SealedRecord]:
    from dalp_dr.history import open_store

    store = open_store(f"sqlite:///{base / 'results' / 'history.sqlite'}",
                       results_dir=base / "results")
    try:
        return list(store.sealed_records())
    finally:
        store.close()
