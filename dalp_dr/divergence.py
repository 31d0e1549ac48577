"""The divergence probe's figures: what a failover lost, exactly, from the old primary's WAL.

The probe (playbooks/roles/dalp_pg/tasks/divergence.yml, module ``dalp_dr/wal_divergence.py``)
publishes ``dalp_divergence``: the fork, and every transaction the old primary committed at or
after it (id, commit time, relation file numbers, record count), with the relations' names
from the recovered catalog. Everything in it is data a target printed: numbers are accepted
only as numbers, times only as times, names only as text, and a report that does not hold
together is "unavailable", never a figure.

* exact data-loss window = newest lost commit - newest commit before the fork (both the old
  primary's own clock: no clock offset enters it); 0 when nothing was lost.
* the lost transactions go to the evidence as JSON lines (``lost-transactions.jsonl``): ids,
  commit times, tables, record counts; never row data.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dalp_dr.results import Divergence, LossBasis, Measurements, TableLoss

EVIDENCE = "lost-transactions.jsonl"
TOP_TABLES = 10


class Unusable(ValueError):
    """A probe report that does not hold together."""


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Unusable(f"{what} is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise Unusable(f"{what} is not a whole number") from None
    if number < 0:
        raise Unusable(f"{what} is negative")
    return number


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise Unusable(f"{what} is not a time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Unusable(f"{what} is not a time") from None
    if at.tzinfo is None:
        raise Unusable(f"{what} has no time zone")
    return at.astimezone(UTC)


def _text(value: Any, what: str, limit: int = 200) -> str:
    if not isinstance(value, str):
        raise Unusable(f"{what} is not text")
    return value[:limit]


def _optional_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def read(report: Mapping[str, Any] | None) -> tuple[Divergence, list[dict[str, Any]]]:
    """The probe's figures and the lost transactions (for the evidence) from its report.
    No report, or one that does not hold together: unavailable, with the reason."""
    if not isinstance(report, Mapping):
        return Divergence(available=False, reason="the probe reported nothing"), []
    try:
        return _read(report)
    except Unusable as exc:
        return Divergence(available=False, reason=f"the probe's report is unusable: {exc}"), []


def _read(report: Mapping[str, Any]) -> tuple[Divergence, list[dict[str, Any]]]:
    hosts = {k: _text(report[k], k) for k in ("old_primary", "new_primary")
             if report.get(k) is not None}
    if report.get("available") is not True:
        reason = report.get("reason")
        return Divergence(available=False, reason=_text(reason, "reason", 500)
                          if isinstance(reason, str) and reason else "the probe did not say",
                          **hosts), []
    names_in = report.get("names") or {}
    if not isinstance(names_in, Mapping):
        raise Unusable("names is not a mapping")
    names = {_text(k, "a relation"): _text(v, "a table name") for k, v in names_in.items()}
    lost_in = report.get("lost")
    if not isinstance(lost_in, list):
        raise Unusable("lost is not a list")
    lost: list[dict[str, Any]] = []
    tables: Counter[str] = Counter()
    for n, item in enumerate(lost_in):
        if not isinstance(item, Mapping):
            raise Unusable(f"lost[{n}] is not a transaction")
        relations = item.get("relations") or []
        if not isinstance(relations, list):
            raise Unusable(f"lost[{n}].relations is not a list")
        wrote = sorted({names.get(r, r) for r in (_text(r, "a relation") for r in relations)})
        tables.update(wrote)
        lost.append({"xid": _int(item.get("xid"), f"lost[{n}].xid"),
                     "committed_at": _time(item.get("committed_at"),
                                           f"lost[{n}].committed_at").isoformat(),
                     "lsn": _text(item.get("lsn") or "", f"lost[{n}].lsn", 20),
                     "tables": wrote,
                     "records": _int(item.get("records", 0), f"lost[{n}].records")})
    surviving_in = report.get("newest_surviving_commit_at")
    surviving = _time(surviving_in, "newest_surviving_commit_at") \
        if surviving_in is not None else None
    commits = [datetime.fromisoformat(t["committed_at"]) for t in lost]
    newest = max(commits, default=None)
    window: float | None = None
    lower: float | None = None
    if newest is None:
        window = 0.0
    elif surviving is not None:
        window = max(0.0, round((newest - surviving).total_seconds(), 6))
    else:
        lower = round((newest - min(commits)).total_seconds(), 6)
    if window is not None and not math.isfinite(window):
        raise Unusable("the window is not a number")
    return Divergence(
        available=True, **hosts,
        fork_lsn=_text(report.get("fork_lsn") or "", "fork_lsn", 20) or None,
        old_timeline=_optional_int(report.get("old_timeline"), "old_timeline"),
        new_timeline=_optional_int(report.get("new_timeline"), "new_timeline"),
        lost_transactions=len(lost),
        aborted_after_fork=_optional_int(report.get("aborted_after_fork"),
                                         "aborted_after_fork"),
        unfinished_after_fork=_optional_int(report.get("unfinished_after_fork"),
                                            "unfinished_after_fork"),
        newest_surviving_commit_at=surviving, newest_lost_commit_at=newest,
        oldest_lost_commit_at=min(commits, default=None), window=window,
        window_lower_bound=lower,
        tables=[TableLoss(table=t, commits=c) for t, c in tables.most_common(TOP_TABLES)],
        evidence=EVIDENCE,
    ), lost


def evidence_lines(lost: list[dict[str, Any]]) -> str:
    """The lost transactions as JSON lines, oldest commit first."""
    ordered = sorted(lost, key=lambda t: (t["committed_at"], t["xid"]))
    return "".join(json.dumps(t, sort_keys=True) + "\n" for t in ordered)


def applied(m: Measurements, divergence: Divergence) -> Measurements:
    """A population's figures with the probe's: the exact window judged when the probe read
    the old primary's WAL, the heartbeat's (sampled) otherwise; the result says which."""
    if divergence.available and divergence.window is not None:
        return m.model_copy(update={
            "data_loss_window": divergence.window, "data_loss_window_lower_bound": None,
            "data_loss_basis": LossBasis.EXACT, "sampled_data_loss_window": m.data_loss_window,
            "divergence": divergence})
    return m.model_copy(update={"data_loss_basis": LossBasis.SAMPLED,
                                "divergence": divergence})
