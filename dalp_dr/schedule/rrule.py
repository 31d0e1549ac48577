"""A drill's ``schedule`` (cron and time zone) as the iCalendar RRULE that fires at the same
instants, for schedulers that speak RFC 5545 (AWX: ``DTSTART;TZID=zone:... RRULE:...``,
read with python-dateutil).

"The same instants" means the same as dalp-dr's own scheduler, APScheduler's CronTrigger
(``Schedule.trigger``), which ``schedule status`` and ``report`` judge cadence by. Each cron
field becomes the set of values the trigger matches (read from the trigger itself, not
re-parsed) and then a BY-part of a ``FREQ=DAILY;INTERVAL=1`` rule: minutes and hours expand
each day, months, days of the month and weekdays filter the days. What has no exact
equivalent is refused (:class:`~dalp_dr.errors.SpecError` on the drill file's ``schedule``):

* day of month and day of week both restricted: crontab(5) fires on either, dalp-dr's
  scheduler (and an RRULE) only on both, so the file means two things;
* a step over every weekday (``*/2``): cron counts it from Sunday, dalp-dr's scheduler from
  Monday;
* a day of the month that depends on the month (``last``, ``2nd fri``);
* a seconds field other than 0 (6-field schedules are for tests and labs);
* fire times that the two readings place differently where the zone's clocks skip or repeat
  an hour (a drill at 02:30 in Europe/Berlin): :func:`check_equivalent` compares them
  around every clock change of the next years.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from dalp_dr.errors import SpecError
from dalp_dr.spec import Schedule

FIELD = "schedule"
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
"""RRULE weekday names, in APScheduler's day_of_week order (0 is Monday)"""
COMPARED_FIRES = 50
"""how many fire times from DTSTART :func:`check_equivalent` compares"""
CLOCK_CHANGE_YEARS = 3
"""how far ahead :func:`check_equivalent` looks for the zone's clock changes"""
AROUND_CHANGE = timedelta(hours=3)
"""the span either side of a clock change whose fire times are compared"""
_ALL = {"month": frozenset(range(1, 13)), "day": frozenset(range(1, 32)),
        "day_of_week": frozenset(range(7)), "hour": frozenset(range(24)),
        "minute": frozenset(range(60)), "second": frozenset(range(60))}
_PLAIN_DAY = ("AllExpression", "RangeExpression")
"""day-of-month expressions whose values do not depend on the month"""


class Recurrence(BaseModel, frozen=True):
    """A schedule as an RFC 5545 recurrence: ``text`` is DTSTART and RRULE on one line."""

    timezone: str
    dtstart: datetime
    """the first fire time at or after the start asked for (aware, in ``timezone``)"""
    rule: str
    """the RRULE's value: FREQ=DAILY;INTERVAL=1;BY..."""

    @property
    def text(self) -> str:
        return f"DTSTART;TZID={self.timezone}:{self.dtstart:%Y%m%dT%H%M%S} RRULE:{self.rule}"


def _refuse(source: str, message: str, hint: str) -> SpecError:
    return SpecError(message, source=source, field=FIELD, hint=hint)


def _values(field: Any, name: str) -> frozenset[int]:
    """The values of one field the trigger matches, asked of the field itself."""
    base = datetime(2026, 1, 5)  # a Monday in a month of 31 days
    if name == "day_of_week":
        candidates = {v: base + timedelta(days=v) for v in range(7)}
    elif name == "day":
        candidates = {v: base.replace(day=v) for v in range(1, 32)}
    elif name == "month":
        candidates = {v: base.replace(month=v) for v in _ALL[name]}
    else:  # hour, minute, second: an offset from midnight
        unit = {"hour": 3600, "minute": 60, "second": 1}[name]
        candidates = {v: base + timedelta(seconds=v * unit) for v in _ALL[name]}
    return frozenset(v for v, when in candidates.items() if field.get_next_value(when) == v)


def _field_sets(schedule: Schedule, source: str) -> dict[str, frozenset[int]]:
    trigger = schedule.trigger()
    fields = {f.name: f for f in trigger.fields}
    weekday_text = schedule.cron.split()[-1]
    if any(type(e).__name__ not in _PLAIN_DAY for e in fields["day"].expressions):
        raise _refuse(source, f"day of month '{fields['day']}' depends on the month: an "
                              "AWX schedule cannot say it", "give the days as numbers, "
                              "ranges or steps (1, 1-7, */7)")
    if "*/" in weekday_text:
        raise _refuse(source, f"the weekday step '{weekday_text}' counts from Sunday in "
                              "crontab(5) but from Monday in dalp-dr's scheduler",
                      "list the weekdays (1,3,5) instead of a step")
    sets = {name: _values(fields[name], name) for name in _ALL}
    if sets["second"] != frozenset({0}):
        raise _refuse(source, "a seconds field (6-field schedule) is for tests and labs",
                      "give a 5-field cron expression or 'quarterly'")
    if sets["day"] != _ALL["day"] and sets["day_of_week"] != _ALL["day_of_week"]:
        raise _refuse(source, "both day of month and day of week are restricted: "
                              "crontab(5) runs on either, dalp-dr's scheduler only on both",
                      "restrict one of the two, leave the other '*'")
    return sets


def _numbers(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def rule_of(schedule: Schedule, source: str) -> str:
    """The RRULE value of ``schedule`` (without DTSTART); SpecError when there is none."""
    sets = _field_sets(schedule, source)
    parts = ["FREQ=DAILY", "INTERVAL=1"]
    if sets["month"] != _ALL["month"]:
        parts.append(f"BYMONTH={_numbers(sets['month'])}")
    if sets["day"] != _ALL["day"]:
        parts.append(f"BYMONTHDAY={_numbers(sets['day'])}")
    if sets["day_of_week"] != _ALL["day_of_week"]:
        parts.append("BYDAY=" + ",".join(WEEKDAYS[v] for v in sorted(sets["day_of_week"])))
    parts += [f"BYHOUR={_numbers(sets['hour'])}", f"BYMINUTE={_numbers(sets['minute'])}",
              "BYSECOND=0"]
    return ";".join(parts)


def cron_fires(schedule: Schedule, start: datetime) -> Iterator[datetime]:
    """The trigger's fire times from ``start`` on (inclusive), as dalp-dr's scheduler sees
    them."""
    trigger = schedule.trigger()
    previous: datetime | None = None
    now = start
    while (fire := trigger.get_next_fire_time(previous, now)) is not None:
        yield fire
        previous = now = fire


def recurrence(schedule: Schedule, source: str, start: datetime) -> Recurrence:
    """``schedule`` as DTSTART (its first fire at or after ``start``) and RRULE, checked to
    fire when the trigger does (:func:`check_equivalent`)."""
    rule = rule_of(schedule, source)
    first = next(cron_fires(schedule, start), None)
    if first is None:
        raise _refuse(source, f"'{schedule.cron}' never fires after {start:%Y-%m-%d}",
                      "check the day and month fields (31 in a month of 30 days?)")
    made = Recurrence(timezone=schedule.timezone, rule=rule,
                      dtstart=first.astimezone(ZoneInfo(schedule.timezone)))
    check_equivalent(schedule, made, source)
    return made


def rrule_fires(recurring: Recurrence) -> Iterator[datetime]:
    """The fire times python-dateutil (AWX's reader) gives the recurrence."""
    from dateutil.rrule import rrulestr  # lazy: only an export needs it

    return iter(rrulestr(recurring.text))


def clock_changes(zone: str, start: datetime, years: int) -> list[datetime]:
    """The instants (to the hour) at which ``zone``'s UTC offset changes, from ``start``."""
    tz = ZoneInfo(zone)
    moment = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = moment + timedelta(days=366 * years)
    changes: list[datetime] = []
    offset = moment.astimezone(tz).utcoffset()
    while moment < end:
        moment += timedelta(hours=1)
        now = moment.astimezone(tz).utcoffset()
        if now != offset:
            changes.append(moment)
            offset = now
    return changes


def _utc(fires: Iterator[datetime], end: datetime, limit: int | None) -> list[datetime]:
    """The fire times before ``end`` (at most ``limit``), in UTC."""
    before = takewhile(lambda f: f < end, fires)
    return [f.astimezone(UTC) for f in (islice(before, limit) if limit else before)]


def check_equivalent(schedule: Schedule, recurring: Recurrence, source: str) -> None:
    """SpecError unless dateutil's reading of ``recurring`` fires when the trigger does:
    its first :data:`COMPARED_FIRES` fire times in the next :data:`CLOCK_CHANGE_YEARS` years
    (dateutil misreads zones from 2038 on, so no further), and every fire within
    :data:`AROUND_CHANGE` of each clock change of the zone in those years (where a wall time
    is skipped or repeated)."""
    horizon = recurring.dtstart + timedelta(days=366 * CLOCK_CHANGE_YEARS)
    spans: list[tuple[datetime, datetime, int | None]] = [
        (recurring.dtstart, horizon, COMPARED_FIRES)]
    spans += [(change - AROUND_CHANGE, change + AROUND_CHANGE, None) for change in
              clock_changes(schedule.timezone, recurring.dtstart, CLOCK_CHANGE_YEARS)]
    for begin, end, limit in spans:
        cron = _utc(cron_fires(schedule, begin), end, limit)
        if not cron:
            continue
        anchored = recurring.model_copy(update={
            "dtstart": cron[0].astimezone(ZoneInfo(schedule.timezone))})
        ical = _utc(rrule_fires(anchored), end, limit)
        if cron != ical:
            differ = next((a, b) for a, b in zip([*cron, None], [*ical, None], strict=False)
                          if a != b)
            raise _refuse(source, f"'{schedule.cron}' in {schedule.timezone} has no exact "
                                  f"AWX schedule: dalp-dr's scheduler fires at "
                                  f"{_shown(differ[0])}, the RRULE at {_shown(differ[1])}",
                          "move it out of the hours the zone's clocks skip or repeat, or "
                          "give the schedule in UTC")


def _shown(moment: datetime | None) -> str:
    return "none" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"
