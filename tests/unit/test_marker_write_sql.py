"""The heartbeat write asks the server that takes it which it is: its WAL timeline and its
address. The statement is read by PostgreSQL's own parser (libpg_query, through pglast),
which checks its grammar, not that the server runs it: that is the lab's part (the same
timeline expression is what verify's ``identity`` asks after every failover)."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pglast
from pglast import ast

from dalp_dr.adapters import postgres


def _called(node: Any) -> set[str]:
    """The functions called anywhere under ``node``."""
    names: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            if isinstance(item, ast.FuncCall) and item.funcname:
                names.add(str(item.funcname[-1].sval))
            stack.extend(getattr(item, field) for field in item)
    return names


def test_the_heartbeat_insert_returns_the_servers_timeline_and_address() -> None:
    sql = postgres._INSERT_MARKER.format(table="dalp_dr_heartbeat_a")
    numbers = itertools.count(1)
    # psycopg sends its %s placeholders as $1, $2, ... (the extended query protocol)
    (statement,) = pglast.parse_sql(re.sub("%s", lambda _m: f"${next(numbers)}", sql))
    assert isinstance(statement.stmt, ast.InsertStmt)
    insert: Any = statement.stmt  # (the tree's optional fields: present in this one)
    assert insert.relation.relname == "dalp_dr_heartbeat_a"
    assert [c.name for c in insert.cols] == ["run_id", "seq", "sent_at"]
    timeline, address = insert.returningClause.exprs
    assert isinstance(timeline.val, ast.TypeCast)  # ... ::bit(32)::int
    cast_to: Any = timeline.val.typeName
    assert cast_to.names[-1].sval == "int4"
    assert _called(timeline) == {"pg_walfile_name", "pg_current_wal_lsn", "substr"}
    assert _called(address) == {"host", "inet_server_addr", "inet_server_port"}


def test_the_write_and_identity_read_the_timeline_alike() -> None:
    assert postgres._TIMELINE in postgres._INSERT_MARKER
    (statement,) = pglast.parse_sql(f"select {postgres._TIMELINE}")
    assert _called(statement.stmt) == {"pg_walfile_name", "pg_current_wal_lsn", "substr"}
