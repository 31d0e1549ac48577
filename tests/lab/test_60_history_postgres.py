"""What only the PostgreSQL history store does, on a real server this test starts (initdb in
the lab area, loopback and socket only, stopped and removed after). The store contract both
kinds of store keep is tests/history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from dalp_dr.errors import StoreError
from dalp_dr.history import open_store
from dalp_dr.results import Outcome, RunResult
from tests.factories import make_run
from tests.history.stores import POSTGRES_V1
from tests.lab.helpers import LABS, PG_BIN, as_pg, dalp, postgres_server

pytestmark = pytest.mark.xdist_group("history-postgres")

ROOT_DIR = LABS / "history-postgres"
PORT = 55498


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres_server(ROOT_DIR, PORT, ("dalp_history",)) as url:
        yield f"{url}/dalp_history"


def begun(base: Path, run_id: str) -> RunResult:
    return make_run(base, run_id, "hot-warm-failover", datetime(2026, 11, 27, tzinfo=UTC),
                    Outcome.RUNNING, None).model_copy(update={"ended_at": None})


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://u:s3cret-pw@127.0.0.1:1/x?connect_timeout=2")
    assert "s3cret-pw" not in str(info.value) and "127.0.0.1" in str(info.value)
    assert str(info.value).startswith("cannot open history")


def test_cli_reads_the_postgres_store_from_the_environment(server: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    store = open_store(server)
    store.begin(begun(tmp_path, "20261127T000000Z-cccccc"), "{}")
    store.close()
    monkeypatch.setenv("DALP_DR_STORE", server)
    proc = dalp("store", "migrate", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"postgresql user=postgres dbname=dalp_history host=127.0.0.1 port={PORT}" in proc.stdout
    assert "schema version 5" in proc.stdout
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "20261127T000000Z-cccccc" in proc.stdout
    monkeypatch.setenv("DALP_DR_STORE", "mysql://nope")
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 2 and "DALP_DR_STORE" in proc.stderr  # ConfigError: exit 2


def test_an_older_schema_is_upgraded_only_by_store_migrate(server: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    as_pg(str(PG_BIN / "createdb"), "-h", str(ROOT_DIR), "-p", str(PORT), "dalp_v1")
    url = server.rsplit("/", 1)[0] + "/dalp_v1"
    with psycopg.connect(url, autocommit=True) as db:  # what dalp-dr 0.1 (schema 1) made
        db.execute(POSTGRES_V1)
        db.execute("insert into dalp_dr_schema_version values (1)")
    monkeypatch.setenv("DALP_DR_STORE", url)
    proc = dalp("history", "list", results=tmp_path)
    assert proc.returncode == 1
    assert "schema version 1 is older than this dalp-dr (5)" in proc.stderr
    assert "dalp-dr store migrate" in proc.stderr
    proc = dalp("store", "migrate", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "upgraded from schema version 1" in proc.stdout
    assert dalp("history", "list", results=tmp_path).returncode == 0
    with psycopg.connect(url) as db:
        assert db.execute("select version from dalp_dr_schema_version").fetchall() == [(5,)]
        assert db.execute("select to_regclass('dalp_dr_leases') is not null").fetchall() \
            == [(True,)]


def test_the_store_reconnects_after_a_server_restart(server: str, tmp_path: Path) -> None:
    store = open_store(server)
    store.begin(begun(tmp_path, "20261127T000000Z-eeeeee"), "{}")
    # -l: a restarted postmaster must not inherit (and hold open) our captured stdout
    as_pg(str(PG_BIN / "pg_ctl"), "restart", "-w", "-m", "fast", "-D", str(ROOT_DIR / "data"),
          "-l", str(ROOT_DIR / "log"))
    with pytest.raises(StoreError):  # the first call after the restart finds the old socket gone
        store.get("20261127T000000Z-eeeeee")
    assert store.get("20261127T000000Z-eeeeee").outcome.value == "running"  # reconnected
    store.close()
