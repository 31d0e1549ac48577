"""Declarative verify checks from the drill file (``checks:``), run after the verify playbook
passed: read-only SQL through a population's endpoint, HTTP GET with an expected status and
optionally a JSON field. Each check reports what it saw; any failing check fails verify.

DALP's platform-status semantics apply to JSON fields: ``no_data`` (or a missing field) is
never healthy, whatever the expectation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dalp_dr.adapters.base import EndpointSession, ServiceEndpoint
from dalp_dr.drill_yaml import clip
from dalp_dr.errors import EndpointError
from dalp_dr.redact import Redactor
from dalp_dr.results import CheckOutcome
from dalp_dr.spec import Expect, VerifyCheck

NO_DATA = "no_data"

# --- what an SQL check may run ----------------------------------------------------------------
#
# A check looks and never changes. Four layers, each enough against the known bypasses:
# 1. check_query (at validate and again before running): exactly one SELECT, no
#    data-modifying WITH, no SELECT INTO or row locks, no call of a side-effecting function
#    (read-only mode does not stop pg_terminate_backend, COPY TO PROGRAM or lo_export);
# 2. the server is given ``select * from (<query>) as dalp_check``: its own grammar refuses
#    anything but a query there (COPY, a second statement, a data-modifying WITH);
# 3. the extended query protocol (one statement per Parse message);
# 4. a connection whose every transaction is read-only (default_transaction_read_only=on)
#    and a transaction set read only.
# What no parser can see (a view or function of the database that calls
# pg_terminate_backend) is left to the role: 'dalp-dr doctor' warns about check roles that
# are superusers or may signal backends or reach server files and programs.

SIDE_EFFECT_FUNCTIONS = frozenset({
    # other sessions and the server process
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_log_backend_memory_contexts", "pg_promote", "pg_switch_wal",
    "pg_create_restore_point", "pg_wal_replay_pause", "pg_wal_replay_resume",
    "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
    "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
    "pg_drop_replication_slot", "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot", "pg_replication_slot_advance",
    "pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
    "pg_logical_emit_message", "pg_notify", "set_config", "pg_import_system_collations",
    "pg_stat_statements_reset",
    # server files and programs
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "lowrite",
    # SQL text run by a function: the query inside is not checked here
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
    "cursor_to_xmlschema", "ts_stat", "ts_rewrite",
})
"""Functions a verify check may not call: they act on the server, other sessions or files,
and PostgreSQL's read-only transactions do not stop them (or they run SQL text)"""

SIDE_EFFECT_PREFIXES = ("dblink", "lo_", "pg_advisory", "pg_try_advisory", "pg_stat_reset",
                        "pg_replication_origin", "pg_file_", "pg_ls_", "pg_read_")

_NOT_A_QUERY = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
                "MergeStmt": "MERGE"}


def check_query(sql: str) -> str:
    """The one read-only query of a verify check, as the server will be given it (without
    a trailing ';'). Raises ValueError unless ``sql`` is exactly one SELECT (WITH, VALUES
    and TABLE included) that writes nothing, creates nothing, locks no rows and calls no
    function of SIDE_EFFECT_FUNCTIONS / SIDE_EFFECT_PREFIXES. Parsed by PostgreSQL's own
    parser (libpg_query, through pglast): what it calls is found in the syntax tree, however
    the text spells, quotes, qualifies or comments it."""
    import pglast
    from pglast import ast

    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 else None
        where = f" at character {location + 1}" if isinstance(location, int) else ""
        raise ValueError(f"not valid SQL: {clip(str(exc.args[0]), 120)}{where}") from None
    if not statements:
        raise ValueError("the query is empty")
    if len(statements) > 1:
        raise ValueError(f"a check runs exactly one statement; this has {len(statements)}")
    root = statements[0].stmt
    if not isinstance(root, ast.SelectStmt):
        command = type(root).__name__.removesuffix("Stmt").upper()
        raise ValueError(f"a check runs one SELECT query, not {command}: checks are "
                         "read-only")
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
            continue
        if not isinstance(node, ast.Node):
            continue
        kind = type(node).__name__
        if kind in _NOT_A_QUERY:
            raise ValueError(f"a check may not {_NOT_A_QUERY[kind]}, not even in a WITH: "
                             "checks are read-only")
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise ValueError("SELECT INTO creates a table: checks are read-only")
            if node.lockingClause:
                raise ValueError("FOR UPDATE/SHARE locks rows: checks are read-only")
        if isinstance(node, ast.FuncCall):
            parts = node.funcname or ()
            name = str(getattr(parts[-1], "sval", "")).lower() if parts else ""
            if name in SIDE_EFFECT_FUNCTIONS or name.startswith(SIDE_EFFECT_PREFIXES):
                raise ValueError(f"a check may not call {name}(): it acts on the server, "
                                 "other sessions or files, which read-only mode does not "
                                 "stop")
        stack.extend(getattr(node, field) for field in node)
    return pglast.split(sql, with_parser=True)[0]


def meets(value: Any, expect: Expect) -> tuple[bool, str]:
    if expect.equals is not None:
        same = (value == expect.equals) if not isinstance(expect.equals, str) \
            else str(value) == expect.equals
        if isinstance(expect.equals, (int, float)) and not isinstance(expect.equals, bool):
            try:
                same = float(value) == float(expect.equals)
            except (TypeError, ValueError):
                same = False
        if not same:
            return False, f"expected {expect.equals!r}, got {value!r}"
    if expect.min is not None or expect.max is not None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False, f"expected a number, got {value!r}"
        if expect.min is not None and number < expect.min:
            return False, f"{number:g} is below the minimum {expect.min:g}"
        if expect.max is not None and number > expect.max:
            return False, f"{number:g} is above the maximum {expect.max:g}"
    return True, "as expected"


def _field(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, dict):
            document = document.get(part)
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return None
    return document


def _connect_read_only(endpoint: ServiceEndpoint, timeout: float) -> EndpointSession:
    """A session whose every transaction is read-only from the start, where the endpoint can
    open one (PostgreSQL); query_value runs read-only in any case."""
    from dalp_dr.adapters.postgres import PostgresEndpoint  # psycopg: not needed to validate

    if isinstance(endpoint, PostgresEndpoint):
        return endpoint.connect(timeout=timeout, read_only=True)
    return endpoint.connect(timeout=timeout)


def _sql(check: VerifyCheck, endpoint: ServiceEndpoint) -> CheckOutcome:
    assert check.sql is not None and check.expect is not None
    try:
        query = check_query(check.sql)
    except ValueError as exc:
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail=f"refused: {exc}")
    try:
        session = _connect_read_only(endpoint, check.timeout.total_seconds())
        try:
            value = session.query_value(query, timeout=check.timeout.total_seconds())
        finally:
            session.close()
    except EndpointError as exc:
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail=f"query failed: {exc}")
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="sql", ok=ok, value=repr(value), detail=detail)


def _http(check: VerifyCheck) -> CheckOutcome:
    assert check.http is not None
    request = urllib.request.Request(check.http, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=check.timeout.total_seconds()) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail=f"request failed: {getattr(exc, 'reason', exc)}")
    if status != check.status:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=str(status),
                            detail=f"HTTP {status}, expected {check.status}")
    if check.json_field is None:
        return CheckOutcome(name=check.name, kind="http", ok=True, value=str(status),
                            detail=f"HTTP {status}")
    try:
        value = _field(json.loads(body), check.json_field)
    except (ValueError, UnicodeDecodeError):
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail="the body is not JSON")
    if value is None or value == NO_DATA:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=repr(value),
                            detail=f"{check.json_field} is {value or 'missing'}: no data is "
                                   "not healthy")
    assert check.expect is not None
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="http", ok=ok, value=repr(value), detail=detail)


def run_checks(checks: list[VerifyCheck], endpoints: dict[str, ServiceEndpoint],
               redactor: Redactor) -> list[CheckOutcome]:
    outcomes = []
    first = next(iter(endpoints))
    for check in checks:
        if check.sql is not None:
            outcome = _sql(check, endpoints[check.through or first])
        else:
            outcome = _http(check)
        outcomes.append(outcome.model_copy(update={
            "detail": redactor.text(outcome.detail),
            "value": redactor.text(outcome.value) if outcome.value is not None else None}))
    return outcomes
