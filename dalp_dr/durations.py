"""Durations as operators write them: ``100ms``, ``30s``, ``5m``, ``1h30m``, ``0s``.

A bare number is refused: ``5`` could mean seconds or minutes, and an RPO is not the place
to guess.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
HINT = "write a duration with a unit, e.g. 100ms, 30s, 5m, 1h30m"


def parse_duration(text: str) -> timedelta:
    """Parse ``text`` into a timedelta; raise ValueError with a readable reason."""
    raw = text.strip()
    if not raw:
        raise ValueError(f"empty duration ({HINT})")
    if raw.startswith("-"):
        raise ValueError(f"duration {text!r} is negative ({HINT})")
    pos = 0
    total_ms = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total_ms += float(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        lowered = raw.lower()
        if lowered != raw and _whole(lowered):
            raise ValueError(f"invalid duration {text!r}: units are lowercase (ms, s, m, h, "
                             f"d); did you mean {lowered}?")
        raise ValueError(f"invalid duration {text!r} ({HINT})")
    try:
        return timedelta(milliseconds=total_ms)
    except OverflowError:  # past timedelta's 999999999 days: bad input, not a crash
        raise ValueError(f"duration {text!r} is too long ({HINT})") from None


def _whole(raw: str) -> bool:
    pos = 0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        pos = match.end()
    return pos == len(raw) and pos > 0


def format_duration(value: timedelta | float | None) -> str:
    """Render a duration compactly: ``0.213s``, ``4m05s``, ``2h00m``."""
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if round(seconds, 3) < 60:  # 59.9996 reads 1m00s, never 60.000s
        return f"{sign}{seconds:.3f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes:02d}m"


def _coerce(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("duration is negative")
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r} ({HINT})")
    return parse_duration(value)


def _serialize(value: timedelta) -> str:
    ms = round(value.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms"
    return f"{ms // 1000}s"


Duration = Annotated[
    timedelta, BeforeValidator(_coerce), PlainSerializer(_serialize, return_type=str)
]
"""A pydantic field type for durations written as strings with units."""


def format_offset(value: timedelta | float | None) -> str:
    """A signed duration (from a reference moment) in the one format: ``+1m11s``,
    ``-0.250s``."""
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_duration(seconds) if seconds < 0 else "+" + format_duration(seconds)
