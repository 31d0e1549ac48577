"""Restore-specific logic: WAL segment arithmetic, gap detection, PITR checks, spec."""

from datetime import UTC, datetime, timedelta

import pytest

from dalp_dr.errors import SpecError
from dalp_dr.measure import pitr_check
from dalp_dr.object_store import find_gap, segment_name, segment_number
from dalp_dr.results import HeartbeatSample
from dalp_dr.spec import parse_drill
from tests.factories import at


def test_segment_arithmetic_crosses_the_log_boundary() -> None:
    assert segment_number("0000000100000000000000FF") == (1, 0xFF)
    assert segment_name(1, 0x100) == "000000010000000100000000"
    assert segment_number(segment_name(3, 0x1234)) == (3, 0x1234)
    assert segment_number("00000002.history") is None


def test_find_gap() -> None:
    seg = [segment_name(1, n) for n in (2, 3, 4, 5)]
    assert find_gap(seg[0], seg) is None
    assert find_gap(seg[0], [seg[0], seg[1], seg[3]]) == segment_name(1, 4)
    assert find_gap(seg[0], []) == seg[0]  # nothing archived since the backup started
    # segments of another timeline do not fill a gap on the backup's timeline
    assert find_gap(seg[0], [seg[0], segment_name(2, 3), seg[2]]) == segment_name(1, 3)
    # the sequence continues across 0xFF -> 0x100
    assert find_gap(segment_name(1, 0xFE), [segment_name(1, n) for n in (0xFE, 0xFF, 0x100)]) \
        is None


def sample(seq: int, sent: float, ended: float, acked: bool = True) -> HeartbeatSample:
    return HeartbeatSample(seq=seq, sent_at=at(sent), ended_at=at(ended), acked=acked)


def test_pitr_check() -> None:
    samples = [sample(i, i * 0.1, i * 0.1 + 0.005) for i in range(1, 60)]  # 0.1 .. 5.9 s
    target, fault = at(3.0), at(5.0)
    kept = {s.seq for s in samples if s.ended_at <= target}
    ok = pitr_check(samples, kept, target, fault)
    assert ok["missing_before_target"] == [] and ok["present_after_target"] == []
    assert ok["before_target"] == 29  # acked by 2.95 s
    assert ok["after_target"] == 19  # sent 3.1 .. 4.9 s, before the fault
    too_much = pitr_check(samples, kept | {40}, target, fault)
    assert too_much["present_after_target"] == [40]
    too_little = pitr_check(samples, kept - {10}, target, fault)
    assert too_little["missing_before_target"] == [10]
    # markers written after the fault belong to the restored site: never judged
    assert 55 not in pitr_check(samples, kept | {55}, target, fault)["present_after_target"]


BASE = """\
name: r
topology: hot-cold
scenario: restore
owner: sre
objectives: {rto: 8h, rpo: 4h}
inventory: i.yml
endpoint: {from_inventory: dsn}
phases:
  preflight: {playbook: p.yml}
  inject: {playbook: p.yml}
  verify: {playbook: p.yml}
  steady_state: {playbook: p.yml}
"""


def test_restore_target_forms() -> None:
    assert parse_drill(BASE, source="x").restore is None
    latest = parse_drill(BASE + "restore: {target: latest}\n", source="x").restore
    assert latest is not None and latest.target.latest
    rel = parse_drill(BASE + "restore: {target: {before_fault: 8s}}\n", source="x").restore
    assert rel is not None and rel.target.before_fault == timedelta(seconds=8)
    absolute = parse_drill(BASE + "restore: {target: {time: '2026-10-01T03:00:00Z'}}\n",
                           source="x").restore
    assert absolute is not None and absolute.target.time == datetime(2026, 10, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize(("extra", "words"), [
    ("restore: {target: {before_fault: 8s, time: '2026-10-01T03:00:00Z'}}\n", "one of"),
    ("restore: {target: {time: '2026-10-01T03:00:00'}}\n", "timezone"),
    ("restore: {target: {before_fault: soon}}\n", "invalid duration"),
])
def test_restore_target_errors(extra: str, words: str) -> None:
    with pytest.raises(SpecError, match=words) as info:
        parse_drill(BASE + extra, source="x")
    assert info.value.field is not None and info.value.field.startswith("restore")


def test_restore_only_for_restore_scenario() -> None:
    text = BASE.replace("hot-cold", "hot-warm").replace("scenario: restore", "scenario: failover")
    with pytest.raises(SpecError, match="only to the restore scenario"):
        parse_drill(text + "restore: {target: latest}\n", source="x")
