"""Drill files that did not validate, reported the one way: each as an ``error:`` line on
stderr and, under JSON, one document that is the error object (exit code 2) with the whole
result beside it (which files were fine, every problem), exit 2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dalp_dr.commands import hints
from dalp_dr.commands.output import Output
from dalp_dr.commands.shared import ERRORS, EXIT_INVALID, Exit
from dalp_dr.errors import InvalidInput


def problem_record(path: Path, exc: InvalidInput) -> dict[str, Any]:
    """One invalid file as data: the fields of the error object."""
    return {"file": exc.source or str(path), "field": exc.where(), "message": exc.detail,
            "hint": hints.hint_text(exc)}


def refuse_files(output: Output, problems: Sequence[tuple[Path, InvalidInput]],
                 result: Mapping[str, Any]) -> NoReturn:
    """End the command on invalid drill files (``problems`` is not empty)."""
    records = [problem_record(path, exc) for path, exc in problems]
    first = records[0]
    count = len(records)
    message = first["message"] if count == 1 else \
        f"{first['message']} (and {count - 1} more invalid drill file(s))"
    for record in records:
        where = ": ".join(str(p) for p in (record["file"], record["field"]) if p)
        ERRORS.report("error", f"{where}: {record['message']}"
                      + (f" ({record['hint']})" if record["hint"] else ""))
    if output.is_json:
        output.json({"error": {"message": message, "file": first["file"],
                               "field": first["field"], "hint": first["hint"],
                               "exit_code": EXIT_INVALID},
                     **result, "problems": records})
    raise Exit(EXIT_INVALID)


def refuse_with(output: Output, exc: InvalidInput, result: Mapping[str, Any]) -> NoReturn:
    """End the command on invalid input found after a result was made (an unreachable host
    in a recorded run): under JSON the one error object with the result beside it, else the
    error as main() prints it."""
    if not output.is_json:
        raise exc
    record = problem_record(Path(exc.source or ""), exc)
    ERRORS.report("error", str(exc))
    output.json({"error": {**record, "exit_code": EXIT_INVALID}, "result": dict(result)})
    raise Exit(EXIT_INVALID)
