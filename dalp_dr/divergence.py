"""The divergence probe's figures: what a failover lost, exactly, from the old primary's WAL.

The probe (playbooks/roles/dalp_pg/tasks/divergence.yml, module ``dalp_dr/wal_divergence.py``)
publishes ``dalp_divergence``: the fork, and every transaction the old primary committed at or
after it (id, commit time, relation file numbers, record count), with the relations' names
from the recovered catalog. Everything in it is data a target printed: numbers are accepted
only as numbers, times only as times, names only as text, and a report that does not hold
together is "unavailable", never a figure.

* exact data-loss window = newest lost commit - newest commit before the fork (both the old
  primary's own clock: no clock offset enters it); 0 when nothing was lost.
* a commit past the fork that the promoted node (a synchronous standby the old primary waited
  for at the fault, with synchronous_commit on, remote_write or remote_apply everywhere) had
  not confirmed was never confirmed to its client either: such commits are still counted and
  listed, but the exact window judged (acknowledged loss) is 0 (``never_acknowledged`` says
  why; ``window`` keeps their span). A heartbeat that lost acknowledged writes withdraws it.
  A session that lowered synchronous_commit itself, or cancelled its wait, is beyond what the
  server can tell afterwards (README "Exact data loss").
* the lost transactions go to the evidence as JSON lines (``lost-transactions.jsonl``): ids,
  commit times, tables, record counts; never row data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dalp_dr.results import Divergence, LossBasis, Measurements, TableLoss

EVIDENCE = "lost-transactions.jsonl"
TOP_TABLES = 10
CONFIRMING = frozenset({"on", "true", "yes", "1", "remote_write", "remote_apply"})
"""synchronous_commit values under which a commit waits for the synchronous standbys"""
SERVER_SOURCES = frozenset({"default", "configuration file", "command line",
                            "environment variable"})
"""pg_settings sources of a value the whole server has (not a role's, database's or
client's)"""


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
        if at.tzinfo is None:
            raise Unusable(f"{what} has no time zone")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Unusable(f"{what} is not a time") from None


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
    for n, item in enumerate(lost_in):
        if not isinstance(item, Mapping):
            raise Unusable(f"lost[{n}] is not a transaction")
        relations = item.get("relations") or []
        if not isinstance(relations, list):
            raise Unusable(f"lost[{n}].relations is not a list")
        lost.append({"xid": _int(item.get("xid"), f"lost[{n}].xid"),
                     "committed_at": _time(item.get("committed_at"),
                                           f"lost[{n}].committed_at").isoformat(),
                     "lsn": _text(item.get("lsn") or "", f"lost[{n}].lsn", 20),
                     "tables": sorted({names.get(r, r) for r in
                                       (_text(r, "a relation") for r in relations)}),
                     "records": _int(item.get("records", 0), f"lost[{n}].records")})
    total = _int(report.get("lost_total", len(lost)), "lost_total")
    if total < len(lost):
        raise Unusable("lost_total is less than the transactions listed")
    tables = _tables(report.get("relation_sets"), names, lost, total)
    commits = [datetime.fromisoformat(t["committed_at"]) for t in lost]
    newest = _optional_time(report.get("newest_lost_commit_at"), "newest_lost_commit_at") \
        or max(commits, default=None)
    oldest = _optional_time(report.get("oldest_lost_commit_at"), "oldest_lost_commit_at") \
        or min(commits, default=None)
    if total and (newest is None or oldest is None or oldest > newest):
        raise Unusable("lost transactions without their commit times")
    surviving = _optional_time(report.get("newest_surviving_commit_at"),
                               "newest_surviving_commit_at")
    window: float | None = None
    lower: float | None = None
    if not total:
        window = 0.0
    elif surviving is not None and newest is not None and newest > surviving:
        window = round((newest - surviving).total_seconds(), 6)
    elif newest is not None and oldest is not None:
        # no commit before the fork was read, or the old primary's clock went back between
        # them: the lost commits' own span is all that is sure
        lower = round((newest - oldest).total_seconds(), 6)
    guard = never_acknowledged(report.get("commit_guard"), hosts.get("old_primary"),
                               hosts.get("new_primary")) if total else None
    return Divergence(
        available=True, **hosts, never_acknowledged=guard,
        fork_lsn=_text(report.get("fork_lsn") or "", "fork_lsn", 20) or None,
        old_timeline=_optional_int(report.get("old_timeline"), "old_timeline"),
        new_timeline=_optional_int(report.get("new_timeline"), "new_timeline"),
        lost_transactions=total, listed=len(lost),
        aborted_after_fork=_optional_int(report.get("aborted_after_fork"),
                                         "aborted_after_fork"),
        unfinished_after_fork=_optional_int(report.get("unfinished_after_fork"),
                                            "unfinished_after_fork"),
        newest_surviving_commit_at=surviving, newest_lost_commit_at=newest,
        oldest_lost_commit_at=oldest, window=window, window_lower_bound=lower,
        tables=tables, evidence=EVIDENCE,
    ), lost


def never_acknowledged(guard: Any, old: str | None, new: str | None) -> str | None:
    """Why no commit past the fork reached its client, if the old primary's word just before
    the fault (``dalp_pg`` commit_guard: target data) says so. All of it must hold:

    * the promoted node was a standby it waited for by name (``sync_state`` ``sync``: FIRST
      semantics, every such standby confirms each commit; under a quorum, ``ANY k``, a
      commit waits for only k of them, perhaps not the one promoted);
    * ``synchronous_commit`` waits for the standbys: the server's own value (its source the
      configuration, not this session's role, database or client), and every database or
      role setting of it;
    * no ``statement_timeout`` in force (server, database or role): a timeout that strikes
      while a commit waits cancels the wait, and the client is told it committed.

    Anything else, or a word that does not hold together: None (no claim)."""
    if not isinstance(guard, Mapping) or not new:
        return None
    commit, source, standbys, overrides, timeouts = (guard.get(k) for k in (
        "synchronous_commit", "synchronous_commit_source", "standbys", "overrides",
        "statement_timeouts"))
    if not (isinstance(commit, str) and isinstance(source, str) and isinstance(standbys, list)
            and isinstance(overrides, list) and isinstance(timeouts, list)):
        return None
    if commit.lower() not in CONFIRMING or source not in SERVER_SOURCES:
        return None
    waited = [s for s in standbys if isinstance(s, Mapping) and s.get("name") == new]
    if not waited or any(s.get("sync_state") != "sync" for s in waited):
        return None
    for item in overrides:
        if not (isinstance(item, Mapping) and isinstance(item.get("value"), str)
                and item["value"].strip().lower() in CONFIRMING):
            return None
    if any(not (isinstance(t, str) and t.strip() in ("0", "0ms", "0s", "0min")) for t in timeouts):
        return None
    return (f"{new} was a synchronous standby {old or 'the old primary'} waited for at the "
            f"fault (synchronous_commit {commit[:20]} everywhere, no statement_timeout): no "
            "commit past its fork was confirmed to its client")


def _optional_time(value: Any, what: str) -> datetime | None:
    return None if value is None else _time(value, what)


def _tables(sets_in: Any, names: Mapping[str, str], lost: list[dict[str, Any]],
            total: int) -> list[TableLoss]:
    """Lost transactions per table, most first: from the module's count of each set of
    relations written (every lost transaction), else from the ones listed."""
    tables: Counter[str] = Counter()
    if isinstance(sets_in, list) and sets_in:
        for n, item in enumerate(sets_in):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)):
                raise Unusable(f"relation_sets[{n}] is not [relations, count]")
            wrote = {names.get(r, r) for r in (_text(r, "a relation") for r in item[0])}
            count = _int(item[1], f"relation_sets[{n}] count")
            for table in wrote:
                tables[table] += count
    else:
        for item in lost:
            tables.update(item["tables"])
    if any(c > total for c in tables.values()):
        raise Unusable("a table lost more transactions than were lost")
    return [TableLoss(table=t, commits=c) for t, c in tables.most_common(TOP_TABLES)]


def evidence_lines(lost: list[dict[str, Any]], *, unlisted: int = 0) -> str:
    """The lost transactions as JSON lines, oldest commit first; when the probe listed only
    the first of them, a last line says how many more there were. (What the WAL holds: the
    judgement of them is the result's.)"""
    ordered = sorted(lost, key=lambda t: (t["committed_at"], t["xid"]))
    lines = [json.dumps(t, sort_keys=True) for t in ordered]
    if unlisted > 0:
        lines.append(json.dumps({"not_listed": unlisted}))
    return "".join(line + "\n" for line in lines)


def contradiction(m: Measurements, divergence: Divergence,
                  marker_table: str | None = None) -> str | None:
    """Why the heartbeat contradicts the probe, if it does: it lost acknowledged writes that
    the WAL does not show (commits acknowledged before they were flushed, synchronous_commit
    off, or a WAL tail that never reached the disk). Every write the heartbeat lost must be
    among the lost transactions of its marker table (of all of them, when that table is not
    among the tables shown). (Its window is no test: a heartbeat that stalled before the
    fault reaches back further than the fork, by the stall.)"""
    lost = m.lost_writes or 0
    if not lost or divergence.lost_transactions is None:
        return None
    if divergence.never_acknowledged is not None:
        return (f"the heartbeat lost {lost} acknowledged writes, yet {divergence.new_primary} "
                "was a synchronous standby the old primary waited for: a session that lowered "
                "synchronous_commit, or a wait cancelled?")
    mine = [t.commits for t in divergence.tables
            if marker_table and t.table.rsplit(".", 1)[-1] == marker_table]
    found = mine[0] if mine else divergence.lost_transactions
    if found >= lost:
        return None
    where = f"for {marker_table}" if mine else "in all"
    return (f"the heartbeat lost {lost} acknowledged writes; the old primary's WAL shows "
            f"{found} lost transactions {where} (writes acknowledged before they reached "
            "its disk?)")


def applied(m: Measurements, divergence: Divergence,
            marker_table: str | None = None) -> Measurements:
    """A population's figures with the probe's: the exact window judged when the probe read
    the old primary's WAL and the heartbeat does not contradict it, the heartbeat's
    (sampled) otherwise; the result says which, and why."""
    problem = divergence.contradicted or (contradiction(m, divergence, marker_table)
                                          if divergence.available else None)
    if problem is not None:  # a claim the heartbeat contradicts is no claim
        divergence = divergence.model_copy(update={"contradicted": problem,
                                                   "never_acknowledged": None})
    acknowledged = 0.0 if divergence.never_acknowledged else divergence.window
    if divergence.available and acknowledged is not None and problem is None:
        return m.model_copy(update={
            "data_loss_window": acknowledged, "data_loss_window_lower_bound": None,
            "data_loss_basis": LossBasis.EXACT, "sampled_data_loss_window": m.data_loss_window,
            "divergence": divergence})
    return m.model_copy(update={"data_loss_basis": LossBasis.SAMPLED,
                                "divergence": divergence})
