"""Journal event kinds are one enum; their values are what evidence on disk holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dalp_dr.journal import EventKind, Journal, read_journal, records_of
from dalp_dr.redact import Redactor

PACKAGE = Path(__file__).parents[2] / "dalp_dr"
LITERAL_KIND = re.compile(r"\.record\(\s*\"([^\"]+)\"")


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_every_kind_written_as_a_string_is_a_known_kind() -> None:
    written = {kind for path in PACKAGE.rglob("*.py")
               for kind in LITERAL_KIND.findall(path.read_text(encoding="utf-8"))}
    assert written <= {k.value for k in EventKind}, written - {k.value for k in EventKind}


def test_kinds_name_the_files_and_records_as_before(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    clock = FixedClock(datetime(2026, 10, 1, 3, tzinfo=UTC))
    journal = Journal(tmp_path / "r", "r", Redactor(), observer=lambda k, b: seen.append((k, b)),
                      clock=clock)
    journal.record(EventKind.PHASE_STARTED, phase="inject")
    journal.record(EventKind.PHASE_FINISHED, phase="inject")
    journal.close()
    assert sorted(p.name for p in (tmp_path / "r" / "journal").iterdir()) == [
        "000001-phase.started.json", "000002-phase.finished.json"]
    records = read_journal(tmp_path / "r")
    assert [r["kind"] for r in records] == ["phase.started", "phase.finished"]
    assert records[0]["at"] == "2026-10-01T03:00:00+00:00"
    assert records_of(records, EventKind.PHASE_FINISHED) == [records[1]]
    assert [k for k, _ in seen] == ["phase.started", "phase.finished"]
