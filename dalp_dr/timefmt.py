"""Times as a person reads them, always with their zone: ``2026-10-01 03:00:00 UTC``,
``2026-10-01 03:00:00 Europe/Amsterdam``. A time is shown in the drill's zone where it has
one, else in UTC; a naive time is taken as UTC (the store keeps UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_of(name: str | None) -> tzinfo:
    """The zone called ``name`` (an IANA name), UTC when None, empty or unknown."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _zone_name(zone: tzinfo) -> str:
    return "UTC" if zone is UTC else str(getattr(zone, "key", None) or zone)


def format_time(value: datetime | None, zone: str | None = None, *,
                millis: bool = False, seconds: bool = True) -> str:
    """``value`` in ``zone`` (IANA name; None: UTC) as ``YYYY-MM-DD HH:MM:SS ZONE``
    (``millis``: with milliseconds; ``seconds=False``: to the minute); ``-`` for None."""
    if value is None:
        return "-"
    tz = zone_of(zone)
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz)
    text = f"{local:%Y-%m-%d %H:%M}"
    if seconds or millis:
        text += f":{local:%S}"
    if millis:
        text += f".{local.microsecond // 1000:03d}"
    return f"{text} {_zone_name(tz)}"


def format_clock(value: datetime, zone: str | None = None) -> str:
    """The time of day only, with milliseconds and zone (progress lines of a run):
    ``03:00:01.250 UTC``."""
    tz = zone_of(zone)
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz)
    return f"{local:%H:%M:%S}.{local.microsecond // 1000:03d} {_zone_name(tz)}"
