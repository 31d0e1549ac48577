from pathlib import Path

import pytest

from dalp_dr.history import open_store
from tests.history_contract import (
    check_coordination_contract,
    check_evidence_contract,
    check_integrity_contract,
    check_store_contract,
    result,
)


def test_sqlite_keeps_the_history_contract(tmp_path: Path) -> None:
    check_store_contract(lambda: open_store(f"sqlite:///{tmp_path / 'h.sqlite'}"))


def test_sqlite_keeps_the_evidence_contract(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    check_evidence_contract(lambda results, hook: open_store(url, results_dir=results,
                                                             observer=hook), tmp_path)


def test_unknown_store_scheme_is_invalid_input() -> None:
    from dalp_dr.errors import ConfigError

    with pytest.raises(ConfigError):
        open_store("mysql://x")


def test_sqlite_keeps_the_coordination_contract(tmp_path: Path) -> None:
    check_coordination_contract(lambda: open_store(f"sqlite:///{tmp_path / 'h.sqlite'}"))


def test_a_version_1_store_is_upgraded_on_open_and_keeps_its_runs(tmp_path: Path) -> None:
    import sqlite3

    from dalp_dr.history.sqlite import _DDL, SqliteHistory

    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_DDL)
    db.execute("insert into schema_version values (1)")
    db.commit()
    db.close()
    old = SqliteHistory(path)
    assert old.migrated_from == 1
    old.begin(result("20261126T120000Z-aaaaaa", 0), "{}")
    assert old.acquire_lease("environment:lab", "h", "i", 10).holder == "h"
    old.close()
    again = SqliteHistory(path)
    assert again.migrated_from is None
    assert [r.run_id for r in again.list_runs()] == ["20261126T120000Z-aaaaaa"]
    assert sqlite3.connect(path).execute("select version from schema_version").fetchall() \
        == [(4,)]
    again.close()


def test_sqlite_keeps_the_integrity_contract(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "h.sqlite"

    def tamper(sql: str) -> None:
        db = sqlite3.connect(path)
        db.execute(sql.format(runs="runs"))
        db.commit()
        db.close()

    check_integrity_contract(lambda: open_store(f"sqlite:///{path}"), tamper)
