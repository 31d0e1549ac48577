"""CSV cells a spreadsheet would run as a formula are written as data: a text cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's list) gets a leading
``'``. Numbers, including negative ones written as text, are left as they are."""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in FORMULA_START and not _number(value):
        return "'" + value
    return value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
