"""Time-zone names in drill files: an IANA name, with a did-you-mean for a typo."""

from __future__ import annotations

import difflib
import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dalp_dr.drill_yaml import shown


@functools.cache
def _known() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones() | {"UTC"}}


def suggest_zone(name: str) -> str | None:
    """The known zone closest to ``name`` (case aside), or None."""
    known = _known()
    if name.lower() in known:
        return known[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return known[close[0]] if close else None


def check_zone(name: str) -> str:
    """``name`` when it is an IANA time zone, else ValueError saying which one was meant."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    else:
        return name
    guess = suggest_zone(name)
    raise ValueError(f"unknown time zone {shown(name)}"
                     + (f"; did you mean {guess}?" if guess else ""))
