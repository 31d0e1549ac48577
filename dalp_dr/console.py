"""The CLI's consoles and its last word on an exception nobody expected.

Everything dalp-dr prints can hold text from outside (drill files, what a target or a
playbook said, rows of the history store): the consoles never read it as Rich markup or
``:emoji:`` codes. Colour is given explicitly, with ``rich.text.Text`` and styles
(``styled``), never by markup in a string.
"""

from __future__ import annotations

import sys
import traceback

from rich.console import Console
from rich.text import Text

from dalp_dr import config
from dalp_dr.redact import Redactor

DEBUG_VARIABLE = config.EnvVar.DEBUG.value
"""set (to anything but '', 0, false, no) to get a traceback for an unexpected exception"""

# Not a terminal (CI logs, pipes): wide enough that tables do not fold run ids.
out = Console(highlight=False, markup=False, emoji=False,
              width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from literal parts: a str as it is, a (text, style) pair in that style."""
    return Text.assemble(*parts)


def debugging() -> bool:
    return config.debugging()


def unexpected(exc: BaseException) -> str:
    """One line about an exception no command expected: its type and (redacted, shortened)
    message, and how to see the traceback (written to stderr first when debugging)."""
    if debugging():
        sys.stderr.write(traceback_text(exc))
    text = Redactor().text(" ".join(str(exc).split()))
    text = text[:300] + "..." if len(text) > 300 else text
    return (f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")
            + f" (a dalp-dr bug; {DEBUG_VARIABLE}=1 shows the traceback)")


def traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
