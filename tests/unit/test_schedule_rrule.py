"""A drill's schedule as an RRULE (dalp_dr.schedule.rrule): the rule python-dateutil reads
(as AWX does) fires when APScheduler's CronTrigger, dalp-dr's own scheduler, does; what has
no exact RRULE is refused naming the file and the field ``schedule``.

The comparisons here build the rule with ``rule_of`` alone (not ``recurrence``, which checks
itself the same way) and read it with dateutil directly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from dalp_dr.errors import SpecError
from dalp_dr.schedule import rrule
from dalp_dr.spec import Schedule

FIRES = 20
BEFORE = datetime(2037, 1, 1, tzinfo=UTC)
"""dateutil reads a zone's offsets from the 32-bit part of its TZif file: from 2038 on it
keeps the last one it knows (AWX with it), so the comparisons stop before"""


def cron_times(schedule: Schedule, start: datetime, count: int = FIRES) -> list[datetime]:
    """The trigger's next fire times, asked the way the scheduler asks."""
    trigger = schedule.trigger()
    found: list[datetime] = []
    previous = None
    now = start
    while len(found) < count:
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        if fire >= BEFORE:
            break
        found.append(fire.astimezone(UTC))
        previous = now = fire
    return found


def ical_times(text: str, count: int = FIRES) -> list[datetime]:
    rule: Iterator[datetime] = iter(rrulestr(text))
    return [t.astimezone(UTC) for t in islice(takewhile(lambda t: t < BEFORE, rule), count)]


def rrule_text(schedule: Schedule, start: datetime) -> str:
    """DTSTART (the trigger's first fire from ``start``, as wall time in the zone) and the
    translated rule, unchecked."""
    first = cron_times(schedule, start, 1)[0].astimezone(ZoneInfo(schedule.timezone))
    return (f"DTSTART;TZID={schedule.timezone}:{first:%Y%m%dT%H%M%S} "
            f"RRULE:{rrule.rule_of(schedule, 'drill.yaml')}")


@pytest.mark.parametrize(("cron", "zone", "start"), [
    ("quarterly", "UTC", datetime(2026, 1, 1, tzinfo=UTC)),
    ("quarterly", "Europe/Berlin", datetime(2026, 2, 1, tzinfo=UTC)),
    ("quarterly", "America/New_York", datetime(2027, 6, 1, tzinfo=UTC)),
    # 20 working days across New York's spring change (8 March 2026)
    ("30 9 * * 1-5", "America/New_York", datetime(2026, 2, 25, tzinfo=UTC)),
    # every 20 minutes of office hours across Berlin's autumn change (25 October 2026)
    ("*/20 8-17 * * mon-fri", "Europe/Berlin", datetime(2026, 10, 23, 14, tzinfo=UTC)),
    ("0 4 1,15 */2 *", "Australia/Sydney", datetime(2026, 3, 1, tzinfo=UTC)),
    ("15 */6 * * 0,6", "UTC", datetime(2026, 1, 1, tzinfo=UTC)),  # cron's 0 is Sunday
    ("0 6 * * 7", "Asia/Kolkata", datetime(2026, 1, 1, tzinfo=UTC)),  # and so is 7
    ("0 12 * 3-5 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC)),
    ("45 23 29-31 * *", "UTC", datetime(2026, 1, 1, tzinfo=UTC)),  # short months skipped
    ("0 12 31 * *", "Europe/Berlin", datetime(2026, 1, 1, tzinfo=UTC)),
    ("5/15 1-5/2 * jan,jul *", "UTC", datetime(2026, 1, 1, tzinfo=UTC)),
    ("0 0 * * 0", "Australia/Lord_Howe", datetime(2026, 3, 1, tzinfo=UTC)),  # 30-min DST
])
def test_the_rrule_fires_when_the_cron_trigger_does(cron: str, zone: str,
                                                    start: datetime) -> None:
    schedule = Schedule(cron=cron, timezone=zone)
    assert ical_times(rrule_text(schedule, start)) == cron_times(schedule, start)


def test_quarterly_is_the_first_of_each_quarter_at_three() -> None:
    made = rrule.recurrence(Schedule(cron="quarterly", timezone="Europe/Berlin"), "d.yaml",
                            datetime(2026, 1, 1, tzinfo=UTC))
    assert made.text == ("DTSTART;TZID=Europe/Berlin:20260101T030000 RRULE:FREQ=DAILY;"
                         "INTERVAL=1;BYMONTH=1,4,7,10;BYMONTHDAY=1;BYHOUR=3;BYMINUTE=0;"
                         "BYSECOND=0")
    assert [t.date().isoformat() for t in ical_times(made.text, 5)] == [
        "2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01", "2027-01-01"]


def _part(low: int, high: int) -> st.SearchStrategy[str]:
    """One comma-separated item of a cron field over [low, high]: a value, a range, a step
    over a range or over everything."""
    value = st.integers(low, high)
    ranged = st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.tuples(value, value, st.integers(1, 5)).filter(
        lambda p: p[2] <= max(p[0], p[1]) - min(p[0], p[1])).map(
        lambda p: f"{min(p[0], p[1])}-{max(p[0], p[1])}/{p[2]}")
    every = st.integers(1, max(1, (high - low) // 2)).map(lambda s: f"*/{s}")
    return st.one_of(value.map(str), ranged, stepped, every)


def _field(low: int, high: int, star: bool = True) -> st.SearchStrategy[str]:
    items = st.lists(_part(low, high), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), items) if star else items


_WEEKDAY = st.lists(st.one_of(st.integers(0, 7).map(str), st.sampled_from(
    ["1-5", "mon-fri", "sat,sun", "1-5/2", "tue-thu"])), min_size=1, max_size=3).map(",".join)


@st.composite
def crons(draw: st.DrawFn) -> tuple[str, str]:
    """A 5-field expression dalp-dr accepts and the export translates, and a zone. In a
    zone that changes its clocks (at 02:00-03:00 local in these) the hours stay clear of
    the change; ``test_a_schedule_in_the_hour_the_clocks_change_is_refused`` covers it."""
    zone = draw(st.sampled_from(["UTC", "Asia/Kolkata", "Europe/Berlin", "America/New_York",
                                 "Australia/Sydney"]))
    low_hour = 0 if zone in ("UTC", "Asia/Kolkata") else 4
    day, weekday = draw(st.sampled_from([("day", "*"), ("*", "weekday"), ("*", "*")]))
    return " ".join([
        draw(_field(0, 59)), draw(_field(low_hour, 23, star=low_hour == 0)),
        draw(_field(1, 28)) if day == "day" else "*",
        draw(_field(1, 12)),
        draw(_WEEKDAY) if weekday == "weekday" else "*",
    ]), zone


@settings(max_examples=150, deadline=None)
@given(crons(), st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1)))
def test_any_translated_expression_fires_when_the_trigger_does(
        cron_zone: tuple[str, str], start: datetime) -> None:
    cron, zone = cron_zone
    try:
        schedule = Schedule(cron=cron, timezone=zone)
    except ValueError:  # what APScheduler itself refuses is not a drill's schedule
        return
    begin = start.replace(tzinfo=UTC)
    assert ical_times(rrule_text(schedule, begin)) == cron_times(schedule, begin), cron


@pytest.mark.parametrize(("cron", "says"), [
    ("0 3 1 * 1", "both day of month and day of week are restricted"),
    ("0 3 1-7 * mon-fri", "both day of month and day of week"),
    ("0 3 * * */2", "counts from Sunday in crontab(5) but from Monday"),
    ("0 3 last * *", "depends on the month"),
    ("*/15 * * * * *", "seconds field"),
    ("0 3 31 2 *", "never fires"),
])
def test_what_has_no_exact_rrule_is_refused(cron: str, says: str) -> None:
    with pytest.raises(SpecError) as refused:
        rrule.recurrence(Schedule(cron=cron), "drills/x.yaml", datetime(2026, 1, 1, tzinfo=UTC))
    assert refused.value.source == "drills/x.yaml"
    assert refused.value.field == "schedule"
    assert says in refused.value.detail
    assert refused.value.hint


@pytest.mark.parametrize(("cron", "zone", "scheduler_at"), [
    # 02:30 does not exist on 29 March 2026 in Berlin: APScheduler fires an hour on, at
    # 03:30 CEST; dateutil reads the wall time as 02:30 CEST, an hour earlier
    ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    # 01:30 happens twice on 1 November 2026 in New York: APScheduler fires twice
    ("30 1 * * *", "America/New_York", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
    ("* * * * *", "Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
])
def test_a_schedule_in_the_hour_the_clocks_change_is_refused(cron: str, zone: str,
                                                             scheduler_at: datetime) -> None:
    schedule = Schedule(cron=cron, timezone=zone)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(SpecError) as refused:
        rrule.recurrence(schedule, "drills/x.yaml", start)
    assert refused.value.field == "schedule"
    assert f"dalp-dr's scheduler fires at {scheduler_at:%Y-%m-%d %H:%M} UTC" in \
        refused.value.detail
    assert "skip or repeat" in (refused.value.hint or "")
    # and the difference is real: from a day before, the unchecked rule misses or moves
    # that fire time
    near = scheduler_at - timedelta(days=1)
    fires = cron_times(schedule, near, 2000)
    assert scheduler_at in fires
    assert ical_times(rrule_text(schedule, near), 2000) != fires


def test_clock_changes_are_found_to_the_hour() -> None:
    changes = rrule.clock_changes("Europe/Berlin", datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert changes[:2] == [datetime(2026, 3, 29, 1, tzinfo=UTC),
                           datetime(2026, 10, 25, 1, tzinfo=UTC)]
    assert rrule.clock_changes("UTC", datetime(2026, 1, 1, tzinfo=UTC), 3) == []


def test_the_check_looks_past_the_first_fires_to_each_clock_change() -> None:
    """A daily 02:30 in Berlin agrees for its first 50 fires from January: only the look at
    the clock changes finds March's."""
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert ical_times(rrule_text(schedule, start), 50) == cron_times(schedule, start, 50)
    assert start + timedelta(days=50) < datetime(2026, 3, 29, tzinfo=UTC)
    with pytest.raises(SpecError):
        rrule.recurrence(schedule, "drills/x.yaml", start)
