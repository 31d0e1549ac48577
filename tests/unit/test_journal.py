"""The journal keeps evidence it cannot write (a vanished or full results directory) in
memory, in order, bounded, and writes it with the next write that succeeds; never raises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dalp_dr.journal import BACKLOG_MAX_BYTES, EventKind, Journal, read_journal
from dalp_dr.redact import Redactor


def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "run", "run-1", Redactor(["s3cret"]))


def test_records_not_written_are_held_and_written_in_order_once_they_can_be(
        tmp_path: Path) -> None:
    j = journal(tmp_path)
    j.record(EventKind.RUN_STARTED)
    (j.root / "journal").rename(j.root / "aside")
    (j.root / "journal").write_text("")  # the directory is gone: writes fail
    j.record(EventKind.PHASE_STARTED, phase="verify")
    j.record(EventKind.CHECK, detail="s3cret")
    assert j.problem is not None and "2 held in memory" in j.problem
    (j.root / "journal").unlink()  # writable again
    (j.root / "aside").rename(j.root / "journal")
    j.record(EventKind.PHASE_FINISHED, phase="verify")
    assert j.problem is None
    j.close()
    records = read_journal(j.root)
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert [r["kind"] for r in records] == ["run.started", "phase.started", "check",
                                           "phase.finished"]
    assert "s3cret" not in json.dumps(records)  # held redacted, as written


def test_beyond_the_bound_evidence_is_lost_and_counted_and_close_says_so(
        tmp_path: Path) -> None:
    j = journal(tmp_path)
    shutil.rmtree(j.root / "journal")
    (j.root / "journal").write_text("")
    blob = "x" * (BACKLOG_MAX_BYTES // 4)
    for _ in range(6):  # ~1.5 times the bound: three are held, three lost
        j.record(EventKind.CHECK, detail=blob)
    held = j.problem
    assert held is not None and "3 held in memory, 3 lost (3 check)" in held
    j.close()  # still not writable: what was held is lost too
    assert j.problem is not None and "6 lost (6 check)" in j.problem
    assert not j.flush()


def test_a_run_directory_that_vanishes_is_not_made_again(tmp_path: Path) -> None:
    j = journal(tmp_path)
    j.record(EventKind.RUN_STARTED)
    shutil.rmtree(j.root)
    j.record(EventKind.FAULT_INJECTED)
    assert not j.root.exists()  # not silently recreated half empty
    assert j.problem is not None and "1 held in memory" in j.problem
    assert j.settle() is not None and "1 lost (1 fault.injected)" in (j.problem or "")
