from datetime import timedelta

from dalp_dr.adapters.base import PlaybookResult
from dalp_dr.measure import fault_instant
from tests.factories import T0, at


def inject(report: object, *, status: str = "successful", rc: int = 0) -> PlaybookResult:
    data = {} if report is None else {"dalp_fault_instant": report}
    return PlaybookResult(playbook="inject.yml", status=status, rc=rc, started_at=at(0),
                          ended_at=at(1.0), artifact_data=data)


def epoch(seconds: float) -> str:
    return f"{(T0 + timedelta(seconds=seconds)).timestamp():.9f}"


def test_reported_instant_inside_the_window_is_used() -> None:
    when, source = fault_instant(inject(epoch(0.42)))
    assert when is not None and abs((when - at(0.42)).total_seconds()) < 1e-5
    assert source is not None and "reported" in source


def test_reported_instant_from_a_skewed_clock_falls_back_to_playbook_start() -> None:
    when, source = fault_instant(inject(epoch(30)))  # target clock 29 s ahead
    assert when == at(0)
    assert source is not None and "conservative" in source


def test_garbage_or_missing_report_falls_back_when_inject_succeeded() -> None:
    assert fault_instant(inject("not-a-number"))[0] == at(0)
    assert fault_instant(inject(None))[0] == at(0)


def test_failed_inject_without_report_has_no_instant() -> None:
    assert fault_instant(inject(None, status="failed", rc=2)) == (None, None)


def test_failed_inject_that_reported_keeps_its_instant() -> None:
    when, _ = fault_instant(inject(epoch(0.5), status="failed", rc=2))
    assert when is not None
