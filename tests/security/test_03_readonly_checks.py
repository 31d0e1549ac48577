"""Finding 3: read-only SQL checks could write. The check ran ``set transaction read only``
and then the drill's SQL as one multi-statement string: ``select 1; commit; delete from t``
deleted, ``pg_terminate_backend`` killed other connections, and as a superuser
``COPY ... TO PROGRAM`` ran a command on the database host.

Now a check is exactly one SELECT (PostgreSQL's own parser, through pglast, at validate and
again before running), sent as a subquery through the extended query protocol on a
connection whose every transaction is read-only; side-effecting functions the parser finds
are refused, and doctor warns about check roles that could do more than read.

The unit tests need nothing; the lab tests start their own throwaway PostgreSQL 15 and show
each bypass refused or failing, with no row changed, no file made, no backend killed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dalp_dr.adapters.postgres import PostgresEndpoint
from dalp_dr.checks import _sql, run_checks
from dalp_dr.errors import EndpointError, SpecError
from dalp_dr.redact import Redactor
from dalp_dr.spec import Expect, VerifyCheck, parse_drill
from tests.factories import MINIMAL_DRILL

DRILL = MINIMAL_DRILL

DELETE_AFTER_COMMIT = "select 1; commit; delete from t"
CTE_DELETE = "with d as (delete from t returning 1) select count(*) from d"
TERMINATE = "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'app'"


def with_check(sql: str) -> str:
    quoted = sql.replace("'", "''")
    return DRILL + f"checks:\n  - {{name: c, sql: '{quoted}', expect: {{min: 0}}}}\n"


def unvalidated(sql: str) -> VerifyCheck:
    """A check as if it had slipped past validation: what runs it must refuse it again."""
    return VerifyCheck.model_construct(name="c", sql=sql, through=None, http=None, status=200,
                                       json_field=None, expect=Expect(min=0),
                                       timeout=timedelta(seconds=5))


# --- validate: refused with the usual message (file, checks[i].sql, fix) -----------------------


@pytest.mark.parametrize(("sql", "words"), [
    (DELETE_AFTER_COMMIT, "exactly one statement; this has 3"),
    ("select 1; select 2", "exactly one statement"),
    ("copy (select 1) to program 'touch marker'", "not COPY"),
    ("copy t to '/tmp/t.csv'", "not COPY"),
    (CTE_DELETE, "may not DELETE"),
    ("with u as (update t set x = 0 returning x) select 1", "may not UPDATE"),
    ("with i as (insert into t values (1) returning x) select 1", "may not INSERT"),
    ("insert into t values (1)", "not INSERT"),
    ("delete from t", "not DELETE"),
    ("begin", "not TRANSACTION"),
    ("set role postgres", "not VARIABLESET"),
    ("do $$ begin delete from t; end $$", "not DO"),
    ("call p()", "not CALL"),
    ("select 1 into t2", "SELECT INTO"),
    ("select x from t for update", "FOR UPDATE"),
    (TERMINATE, "pg_terminate_backend()"),
    ("select pg_catalog.pg_cancel_backend(pid) from pg_stat_activity", "pg_cancel_backend()"),
    ('select "pg_terminate_backend"(1)', "pg_terminate_backend()"),
    ("SELECT PG_TERMINATE_BACKEND(1)", "pg_terminate_backend()"),
    ('select U&"pg\\005fterminate_backend"(1)', "pg_terminate_backend()"),
    ("select 1 from t where exists (select pg_terminate_backend(2))", "pg_terminate_backend()"),
    ("select * from pg_terminate_backend(1)", "pg_terminate_backend()"),
    ("select pg_reload_conf()", "pg_reload_conf()"),
    ("select pg_rotate_logfile()", "pg_rotate_logfile()"),
    ("select pg_promote()", "pg_promote()"),
    ("select lo_export(1, '/tmp/x')", "lo_export()"),
    ("select pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("select pg_ls_dir('.')", "pg_ls_dir()"),
    ("select * from dblink('host=x', 'delete from t') as r(x int)", "dblink()"),
    ("select dblink_exec('delete from t')", "dblink_exec()"),
    ("select query_to_xml('delete from t', true, true, '')", "query_to_xml()"),
    ("select set_config('default_transaction_read_only', 'off', false)", "set_config()"),
    ("select pg_advisory_lock(1)", "pg_advisory_lock()"),
    ("select from where", "not valid SQL"),
    ("  ;  ", "the query is empty"),
])
def test_validate_refuses_what_is_not_one_read_only_query(sql: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_drill(with_check(sql), source="drills/x.yaml")
    error = info.value
    assert error.source == "drills/x.yaml"
    assert error.field == "checks[0].sql", error
    assert words in str(error), str(error)


@pytest.mark.parametrize("sql", [
    "select count(*) from dalp_dr_heartbeat where run_id like 'r%'",
    "select 1;",
    "select 'ok' -- trailing comment",
    "/* leading */ select 1",
    "with x as (select 1 as v) select v from x",
    "values (1)",
    "select pg_is_in_recovery()",
    "select 'pg_terminate_backend(1); delete from t' as text",  # text, not a call
    "select 1 as pg_terminate_backend",
])
def test_plain_queries_pass(sql: str) -> None:
    spec = parse_drill(with_check(sql), source="drills/x.yaml")
    assert spec.checks[0].sql == sql  # kept as written (the spec digest does not move)


class RefusesToConnect:
    display = "nowhere"

    def connect(self, *, timeout: float, read_only: bool = False) -> Any:
        raise AssertionError("a refused check must not reach the database")

    def ensure_schema(self) -> None:
        raise AssertionError


@pytest.mark.parametrize("sql", [DELETE_AFTER_COMMIT, CTE_DELETE, TERMINATE,
                                 "copy (select 1) to program 'touch marker'"])
def test_a_check_that_slipped_past_validation_is_refused_before_it_runs(sql: str) -> None:
    outcome = _sql(unvalidated(sql), RefusesToConnect())
    assert not outcome.ok and outcome.detail.startswith("refused: "), outcome


def test_the_check_connection_is_read_only_from_the_start(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    calls: list[dict[str, Any]] = []

    def connect(dsn: str, **options: Any) -> Any:
        calls.append(options)
        if len(calls) == 1 and "options" in options:
            raise psycopg.OperationalError("connection failed: FATAL:  unsupported startup "
                                           "parameter: options")
        return object()

    monkeypatch.setattr(psycopg, "connect", connect)
    endpoint = PostgresEndpoint("host=h dbname=d options='-c search_path=app'", Redactor())
    endpoint.connect(timeout=5)
    assert "options" not in calls[-1]  # the heartbeat's sessions are left as they were
    calls.clear()
    endpoint.connect(timeout=5, read_only=True)
    # the DSN's own options are kept; a pooler that refuses the startup option (pgbouncer
    # without ignore_startup_parameters) gets a plain session: the transaction is still
    # set read only
    assert calls[0]["options"] == "-c search_path=app -c default_transaction_read_only=on"
    assert len(calls) == 2 and "options" not in calls[1]


# --- on a real PostgreSQL 15 --------------------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PORT = 55499


def as_pg(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                   capture_output=True, text=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    """A throwaway PostgreSQL 15 (trust auth, loopback port 55499, socket in its own
    directory), stopped and removed afterwards. Its directory is made with mkdtemp, not
    pytest's tmp_path: the postgres OS user cannot traverse pytest's 0700 base directory."""
    root = Path(tempfile.mkdtemp(prefix="dalp-dr-checks-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    as_pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
          "UTF8", "--locale=C.UTF-8")
    as_pg(str(PG_BIN / "pg_ctl"), "start", "-w", "-D", str(data), "-l", str(root / "log"),
          "-o", f"-p {PORT} -k {root} -c listen_addresses=127.0.0.1")
    try:
        with psycopg.connect(admin_dsn(root), autocommit=True) as db:
            db.execute("create table t (x int)")
            db.execute("insert into t values (1), (2), (3)")
            db.execute("create role checker login")
            db.execute("create role signaller login in role pg_signal_backend")
            db.execute("create role app login")
            db.execute("grant select on t to checker, signaller")
        yield root
    finally:
        as_pg(str(PG_BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(root, ignore_errors=True)


def admin_dsn(root: Path) -> str:
    return f"host={root} port={PORT} user=postgres dbname=postgres"


def endpoint(role: str) -> PostgresEndpoint:
    return PostgresEndpoint(f"host=127.0.0.1 port={PORT} user={role} dbname=postgres",
                            Redactor())


def rows(root: Path) -> int:
    with psycopg.connect(admin_dsn(root)) as db:
        row = db.execute("select count(*) from t").fetchone()
    assert row is not None
    return int(row[0])


def fails(role: str, sql: str) -> str:
    """query_value straight (the validator bypassed): the server must refuse."""
    session = endpoint(role).connect(timeout=5, read_only=True)
    try:
        with pytest.raises(EndpointError) as info:
            session.query_value(sql)
    finally:
        session.close()
    return str(info.value)


@pytest.mark.lab
@pytest.mark.xdist_group("checks-pg")
class TestOnARealServer:
    def test_a_plain_check_still_runs(self, server: Path) -> None:
        checks = [VerifyCheck.model_validate({"name": n, "sql": s, "expect": e}) for n, s, e in (
            ("rows", "select count(*) from t;", {"equals": 3}),
            ("like", "select count(*) from t where x::text like '%' -- all", {"min": 3}),
            ("mode", "select current_setting('transaction_read_only')", {"equals": "on"}))]
        outcomes = run_checks(checks, {"service": endpoint("checker")}, Redactor())
        assert [o.ok for o in outcomes] == [True, True, True], outcomes

    @pytest.mark.parametrize("role", ["postgres", "checker"])
    def test_commit_then_delete_changes_nothing(self, server: Path, role: str) -> None:
        outcome = _sql(unvalidated(DELETE_AFTER_COMMIT), endpoint(role))
        assert not outcome.ok and "refused" in outcome.detail
        fails(role, DELETE_AFTER_COMMIT)  # as a subquery: a syntax error
        # out of the subquery: one Parse message takes one statement (extended protocol)
        breakout = "select 1) as q; commit; delete from t; select * from (select 1"
        assert "cannot insert multiple commands" in fails(role, breakout)
        assert rows(server) == 3

    def test_a_slow_check_is_stopped_by_its_timeout(self, server: Path) -> None:
        """The check's timeout bounds the query on the server, not only the connect."""
        check = VerifyCheck.model_validate({"name": "slow", "sql": "select pg_sleep(30)",
                                            "expect": {"min": 0}, "timeout": "1s"})
        started = time.monotonic()
        [outcome] = run_checks([check], {"service": endpoint("checker")}, Redactor())
        assert not outcome.ok and "statement timeout" in outcome.detail, outcome
        assert time.monotonic() - started < 15

    def test_the_check_connection_refuses_writes_itself(self, server: Path) -> None:
        session = endpoint("postgres").connect(timeout=5, read_only=True)
        try:
            conn = session._conn
            row = conn.execute("show default_transaction_read_only").fetchone()
            assert row == ("on",)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("delete from t")
        finally:
            session.close()
        assert rows(server) == 3

    def test_copy_to_program_runs_nothing_even_as_superuser(self, server: Path) -> None:
        marker = server / "marker"
        sql = f"copy (select 1) to program 'touch {marker}'"
        outcome = _sql(unvalidated(sql), endpoint("postgres"))
        assert not outcome.ok and "refused" in outcome.detail
        fails("postgres", sql)
        time.sleep(0.2)
        assert not marker.exists()

    def test_a_data_modifying_with_changes_nothing(self, server: Path) -> None:
        outcome = _sql(unvalidated(CTE_DELETE), endpoint("postgres"))
        assert not outcome.ok and "refused" in outcome.detail
        assert "top level" in fails("postgres", CTE_DELETE)
        assert rows(server) == 3

    def test_pg_terminate_backend_kills_no_other_backend(self, server: Path) -> None:
        with psycopg.connect(f"host={server} port={PORT} user=app dbname=postgres",
                             autocommit=True) as victim:
            pid = victim.info.backend_pid
            # a role that may signal backends: read-only mode cannot stop the call, the
            # check is refused before it runs (and doctor warns about the role)
            outcome = _sql(unvalidated(TERMINATE), endpoint("signaller"))
            assert not outcome.ok and "refused" in outcome.detail
            # a plain role: the server refuses it, whatever reaches it (PostgreSQL 15: "must
            # be a member of the role whose process is being terminated or member of
            # pg_signal_backend"; 16+: "permission denied to terminate process")
            refusal = fails("checker", f"select pg_terminate_backend({pid})")
            assert "pg_signal_backend" in refusal or "permission denied" in refusal, refusal
            assert victim.execute("select pg_backend_pid()").fetchone() == (pid,)

    def test_the_role_powers_doctor_reports(self, server: Path) -> None:
        expected = {"postgres": ["superuser"], "signaller": ["pg_signal_backend"],
                    "checker": []}
        for role, powers in expected.items():
            session = endpoint(role).connect(timeout=5, read_only=True)
            try:
                assert session.role_powers() == (role, powers)
            finally:
                session.close()

