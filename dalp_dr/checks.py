"""Declarative verify checks from the drill file (``checks:``), run after the verify playbook
passed: read-only SQL through a population's endpoint, HTTP GET with an expected status and
optionally a JSON field. Each check reports what it saw; any failing check fails verify.

DALP's platform-status semantics apply to JSON fields: ``no_data`` (or a missing field) is
never healthy, whatever the expectation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dalp_dr.adapters.base import EndpointSession, ServiceEndpoint
from dalp_dr.drill_yaml import clip
from dalp_dr.errors import EndpointError
from dalp_dr.redact import Redactor
from dalp_dr.results import CheckOutcome
from dalp_dr.spec import Expect, VerifyCheck

if TYPE_CHECKING:
    from dalp_dr.probes import Web

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
        if isinstance(node, ast.ParamRef) and node.number != 1:
            raise ValueError(f"${node.number}: a check's query may use only $1 (the fault "
                             "instant)")
        if isinstance(node, ast.FuncCall):
            parts = node.funcname or ()
            name = str(getattr(parts[-1], "sval", "")).lower() if parts else ""
            if name in SIDE_EFFECT_FUNCTIONS or name.startswith(SIDE_EFFECT_PREFIXES):
                raise ValueError(f"a check may not call {name}(): it acts on the server, "
                                 "other sessions or files, which read-only mode does not "
                                 "stop")
        stack.extend(getattr(node, field) for field in node)
    statement = pglast.split(sql, with_parser=True)[0]
    # up to its last token: a comment after it (``select 1 -- x;``) would swallow whatever
    # the statement is followed by (split has already dropped a separating ';')
    tokens = [t for t in pglast.parser.scan(statement)
              if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    return statement[:tokens[-1].end + 1] if tokens else statement


def takes_fault_instant(sql: str) -> bool:
    """Whether the query uses ``$1`` (the fault instant): it is given only then."""
    import pglast
    from pglast import ast

    stack: list[Any] = [s.stmt for s in pglast.parse_sql(sql)]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, ast.ParamRef):
            return True
        elif isinstance(node, ast.Node):
            stack.extend(getattr(node, f) for f in node)
    return False


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


def connect_read_only(endpoint: ServiceEndpoint, timeout: float) -> EndpointSession:
    """A session whose every transaction is read-only from the start, where the endpoint can
    open one (PostgreSQL); query_value runs read-only in any case."""
    from dalp_dr.adapters.http import ApiEndpoint
    from dalp_dr.adapters.postgres import PostgresEndpoint  # psycopg: not needed to validate

    if isinstance(endpoint, ApiEndpoint):  # its SQL read-back, never the API
        if endpoint.sql_endpoint is None:
            raise EndpointError("the population reaches the platform through its API only: "
                                "no SQL way in")
        endpoint = endpoint.sql_endpoint
    if isinstance(endpoint, PostgresEndpoint):
        return endpoint.connect(timeout=timeout, read_only=True)
    return endpoint.connect(timeout=timeout)


def fault_params(sql: str, fault_at: datetime | None) -> tuple[Any, ...]:
    """What fills ``$1``: the fault instant, when the query uses it."""
    return (fault_at,) if fault_at is not None and takes_fault_instant(sql) else ()


def _sql(check: VerifyCheck, endpoint: ServiceEndpoint, fault_at: datetime | None = None
         ) -> CheckOutcome:
    assert check.sql is not None and check.expect is not None
    try:
        query = check_query(check.sql)
    except ValueError as exc:
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail=f"refused: {exc}")
    if fault_at is None and takes_fault_instant(query):
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail="the query uses $1 (the fault instant), which is not known")
    try:
        session = connect_read_only(endpoint, check.timeout.total_seconds())
        try:
            value = session.query_value(query, timeout=check.timeout.total_seconds(),
                                        params=fault_params(query, fault_at))
        finally:
            session.close()
    except EndpointError as exc:
        return CheckOutcome(name=check.name, kind="sql", ok=False, value=None,
                            detail=f"query failed: {exc}")
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="sql", ok=ok, value=repr(value), detail=detail)


def _http(check: VerifyCheck, web: Web | None = None) -> CheckOutcome:
    from dalp_dr.adapters.http import HttpSettings
    from dalp_dr.probes import Web, field

    web = web or Web(HttpSettings(), {})
    assert check.http is not None
    url = web.url(check.http)
    client = web.client(check.timeout.total_seconds())
    try:
        reply = client.request("GET", url)
    except EndpointError as exc:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail=f"request failed: {exc}")
    finally:
        client.close()
    if reply.status != check.status:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=str(reply.status),
                            detail=f"HTTP {reply.status}, expected {check.status}")
    if check.json_field is None:
        if isinstance(reply.body, dict) and reply.body.get("status") == NO_DATA:
            return CheckOutcome(name=check.name, kind="http", ok=False, value=str(reply.status),
                                detail=f"HTTP {reply.status}, but the platform reports "
                                       "status no_data: no data is not healthy")
        return CheckOutcome(name=check.name, kind="http", ok=True, value=str(reply.status),
                            detail=f"HTTP {reply.status}")
    if reply.body is None:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=None,
                            detail="the body is not JSON")
    value = field(reply.body, check.json_field)
    if value is None or value == NO_DATA:
        return CheckOutcome(name=check.name, kind="http", ok=False, value=repr(value),
                            detail=f"{check.json_field} is {value or 'missing'}: no data is "
                                   "not healthy")
    assert check.expect is not None
    ok, detail = meets(value, check.expect)
    return CheckOutcome(name=check.name, kind="http", ok=ok, value=repr(value), detail=detail)


def run_checks(checks: list[VerifyCheck], endpoints: Mapping[str, ServiceEndpoint],
               redactor: Redactor, web: Web | None = None, *,
               fault_at: datetime | None = None) -> list[CheckOutcome]:
    """Each check in order; ``web``: the inventory's HTTP settings and URLs (default: none
    needed, inline URLs with default settings)."""
    outcomes = []
    first = next(iter(endpoints))
    for check in checks:
        if check.sql is not None:
            outcome = _sql(check, endpoints[check.through or first], fault_at)
        else:
            outcome = _http(check, web)
        outcomes.append(outcome.model_copy(update={
            "detail": redactor.text(outcome.detail),
            "value": redactor.text(outcome.value) if outcome.value is not None else None}))
    return outcomes
