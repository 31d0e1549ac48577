"""The engine's recovery timeline: reported platform events merged with the client's view."""

from datetime import UTC, datetime, timedelta
from typing import Any

from dalp_dr.adapters.dns import ClientResolver, Resolution
from dalp_dr.results import PhaseRecord, PhaseStatus
from dalp_dr.spec import PhaseName
from dalp_dr.timeline import build, offset, resolved
from tests.factories import at, timeline

FAULT = at(2.05)


def phase(report: dict[str, Any]) -> PhaseRecord:
    return PhaseRecord(phase=PhaseName.VERIFY, status=PhaseStatus.OK, started_at=at(0),
                       ended_at=at(9), report=report)


def test_events_in_time_order_with_offsets_from_the_fault() -> None:
    reported = {"dalp_timeline": [
        {"event": "cluster whole", "at": at(8).timestamp(), "detail": "3 members",
         "source": "patroni watch"},
        {"event": "new leader elected", "at": at(4).isoformat()},
    ]}
    events = build(fault_at=FAULT, fault_source="reported by the inject playbook, ...",
                   clients={"service": (timeline(acked_until=2.0, down_until=3.5, end=5.0),
                                        at(3.505))},
                   verified_at=at(9.5), phases=[phase(reported)])
    assert [e.name for e in events] == [
        "fault injected", "first client write failed", "first client write acknowledged",
        "new leader elected", "cluster whole", "verify passed"]
    assert [round(offset(e, FAULT) or 0, 3) for e in events] == [
        0.0, 0.055, 1.455, 1.95, 5.95, 7.45]
    whole = events[4]
    assert whole.source == "verify playbook (patroni watch)" and whole.detail == "3 members"
    assert events[0].source == "inject playbook"


def test_malformed_reports_are_left_out_not_guessed() -> None:
    reported = {"dalp_timeline": [
        {"event": "", "at": 1.0}, {"event": "no instant"}, {"event": "bad", "at": "soon"},
        {"event": "bool", "at": True}, "not a dict",
        {"event": "kept", "at": "2026-11-26T12:00:04"},  # naive ISO: taken as UTC
    ]}
    events = build(fault_at=None, fault_source=None, clients={}, verified_at=None,
                   phases=[phase(reported), phase({"dalp_timeline": "x"})])
    assert [e.name for e in events] == ["kept"]
    assert events[0].at == datetime(2026, 11, 26, 12, 0, 4, tzinfo=UTC)
    assert offset(events[0], None) is None


def test_same_event_reported_by_two_phases_is_kept_once() -> None:
    entry = {"event": "new leader elected", "at": at(4).timestamp()}
    events = build(fault_at=FAULT, fault_source="controller: inject playbook start",
                   clients={"service": ([], None)}, verified_at=None,
                   phases=[phase({"dalp_timeline": [entry]}), phase({"dalp_timeline": [entry]})])
    assert [e.name for e in events] == ["fault injected", "new leader elected"]
    assert events[0].source == "controller" and events[0].detail is not None
    assert offset(events[1], FAULT) == (at(4) - FAULT) / timedelta(seconds=1)


def test_several_populations_are_named_in_their_events() -> None:
    down = timeline(acked_until=2.0, down_until=3.5, end=5.0)
    steady = timeline(acked_until=10, down_until=10, end=5.0)
    events = build(fault_at=FAULT, fault_source="reported", verified_at=None, phases=[],
                   clients={"site-a": (down, at(3.505)), "site-b": (steady, None)},
                   labelled=True)
    assert [e.name for e in events] == ["fault injected", "site-a: first client write failed",
                                        "site-a: first client write acknowledged"]
    assert events[1].source == "heartbeat (site-a)"


def _looked_up(name: str, addresses: list[str], second: float) -> Resolution:
    return Resolution(name=name, addresses=tuple(addresses), source="server", ttl=5,
                      at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC) + timedelta(seconds=second))


def test_the_first_client_resolving_a_new_address_after_the_fault() -> None:
    fault = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)
    changes = {"api": [_looked_up("api.test", ["10.0.0.1"], 0),
                       _looked_up("other.test", ["10.9.9.9"], 1),  # a redirect's host
                       _looked_up("api.test", ["10.0.0.2"], 14.5)]}
    (event,) = resolved(changes, fault_at=fault)
    assert event.name == "first client resolved the new address"
    assert event.at == fault + timedelta(seconds=4.5)
    assert event.detail == "api.test -> 10.0.0.2 (was 10.0.0.1), TTL 5s"


def test_the_same_addresses_in_another_order_are_no_new_address() -> None:
    fault = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)
    resolver = ClientResolver()
    for addresses in (["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.1"]):
        resolver._note(_looked_up("lb.test", addresses, 12))
    assert len(resolver.changes) == 1
    assert resolved({"api": [_looked_up("lb.test", ["10.0.0.1", "10.0.0.2"], 0),
                             _looked_up("lb.test", ["10.0.0.2"], 12)]},
                    fault_at=fault) == []  # an address dropped out: nothing new to reach
