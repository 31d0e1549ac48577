"""The PostgreSQL history store keeps the same contract as SQLite, on a real server this
test starts (initdb in the lab area, loopback and socket only, stopped and removed after)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dalp_dr.errors import StoreError
from dalp_dr.history import open_store
from tests.history_contract import (
    check_coordination_contract,
    check_evidence_contract,
    check_integrity_contract,
    check_store_contract,
)
from tests.lab.helpers import LABS, PG_BIN, as_pg, dalp, postgres_server

pytestmark = pytest.mark.xdist_group("history-postgres")

ROOT_DIR = LABS / "history-postgres"
PORT = 55498


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server(ROOT_DIR, PORT, ("dalp_history",)) as url:
        yield f"{url}/dalp_history"


def test_postgres_keeps_the_history_contract(server: str) -> None:
    check_store_contract(lambda: open_store(server))


def test_a_second_process_sees_a_run_as_soon_as_it_began(server: str) -> None:
    from tests.history_contract import result

    writer, reader = open_store(server), open_store(server)
    writer.begin(result("20261127T000000Z-dddddd", 0), "{}")
    assert reader.get("20261127T000000Z-dddddd").outcome.value == "running"
    writer.close()
    reader.close()


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://u:s3cret-pw@127.0.0.1:{PORT + 1}/x?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value) and "127.0.0.1" in str(info.value)


def test_cli_reads_the_postgres_store_from_the_environment(server: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("DALP_DR_STORE", server)
    proc = dalp("store", "migrate", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"postgresql user=postgres dbname=dalp_history host=127.0.0.1 port={PORT}" in proc.stdout
    assert "schema version 4" in proc.stdout
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "20261126T120200Z-cccccc" in proc.stdout  # written by the contract test
    monkeypatch.setenv("DALP_DR_STORE", "mysql://nope")
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 2 and "DALP_DR_STORE" in proc.stderr  # ConfigError: exit 2


def test_postgres_keeps_the_coordination_contract(server: str) -> None:
    check_coordination_contract(lambda: open_store(server))


def test_an_older_schema_is_upgraded_only_by_store_migrate(server: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import psycopg

    from dalp_dr.history.postgres import _DDL

    as_pg(str(PG_BIN / "createdb"), "-h", str(ROOT_DIR), "-p", str(PORT), "dalp_v1")
    url = server.rsplit("/", 1)[0] + "/dalp_v1"
    with psycopg.connect(url, autocommit=True) as db:  # what dalp-dr 0.1 (schema 1) made
        db.execute(_DDL)
        db.execute("insert into dalp_dr_schema_version values (1)")
    monkeypatch.setenv("DALP_DR_STORE", url)
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 1
    assert "schema version 1 is older than this dalp-dr (4)" in proc.stderr
    assert "dalp-dr store migrate" in proc.stderr
    proc = dalp("store", "migrate", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "upgraded from schema version 1" in proc.stdout
    assert dalp("history", "list", results=tmp_path).returncode == 0
    with psycopg.connect(url) as db:
        assert db.execute("select version from dalp_dr_schema_version").fetchall() == [(4,)]
        assert db.execute("select to_regclass('dalp_dr_leases') is not null").fetchall() \
            == [(True,)]


def test_the_store_reconnects_after_a_server_restart(server: str) -> None:
    from tests.history_contract import result

    store = open_store(server)
    store.begin(result("20261127T000000Z-eeeeee", 0), "{}")
    # -l: a restarted postmaster must not inherit (and hold open) our captured stdout
    as_pg(str(PG_BIN / "pg_ctl"), "restart", "-w", "-m", "fast", "-D", str(ROOT_DIR / "data"),
          "-l", str(ROOT_DIR / "log"))
    with pytest.raises(StoreError):  # the first call after the restart finds the old socket gone
        store.get("20261127T000000Z-eeeeee")
    assert store.get("20261127T000000Z-eeeeee").outcome.value == "running"  # reconnected
    store.close()


def test_postgres_keeps_the_integrity_contract(server: str) -> None:
    import psycopg

    def tamper(sql: str) -> None:
        with psycopg.connect(server, autocommit=True) as db:
            db.execute(sql.format(runs="dalp_dr_runs"))  # type: ignore[arg-type]

    check_integrity_contract(lambda: open_store(server), tamper)


def test_postgres_keeps_the_evidence_contract(server: str, tmp_path: Path) -> None:
    check_evidence_contract(lambda results, hook: open_store(server, results_dir=results,
                                                             observer=hook), tmp_path)
