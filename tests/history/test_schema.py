"""The store's schema over its versions, on every kind of store: what earlier dalp-dr
versions made opens and works, an older schema is upgraded as the store's migration policy
says (the embedded SQLite store on open, a shared PostgreSQL store only when asked), a newer
one is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from dalp_dr import integrity
from dalp_dr.errors import HintKey, StoreError
from dalp_dr.history import open_store
from dalp_dr.results import Outcome
from tests.factories import make_run
from tests.history.stores import Kind, Place

RUN = "20260115T030000Z-aaaaaa"


def layout(place: Place) -> dict[str, list[tuple[str, str, bool]]]:
    """Every table of the store: its columns in order (name, type, nullable)."""
    url = place.url if place.kind is Kind.SQLITE else \
        place.url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        seen = inspect(engine)
        return {table: [(c["name"], str(c["type"]).lower(), bool(c["nullable"]))
                        for c in seen.get_columns(table)]
                for table in sorted(seen.get_table_names())}
    finally:
        engine.dispose()


def test_a_new_store_has_the_tables_earlier_versions_made(place: Place,
                                                          tmp_path: Path) -> None:
    place.open().close()
    made_now = layout(place)
    for table in ("runs", "chain", "leases", "fires", "schema_version", "approvals"):
        place.sql(f"drop table {{{table}}}")
    place.historic(5)
    assert made_now == layout(place)


def test_a_store_an_earlier_version_wrote_opens_and_works(place: Place,
                                                          tmp_path: Path) -> None:
    place.historic(4)
    # a sealed run written as the earlier implementation wrote it
    done = make_run(tmp_path, RUN, "hot-warm-failover", datetime(2026, 1, 15, 3, tzinfo=UTC),
                    Outcome.PASSED, 1.2)
    entry = integrity.seal(1, RUN, done.model_dump_json(), "{}",
                           integrity.evidence_manifest(done.evidence_dir), integrity.GENESIS,
                           datetime(2026, 1, 15, 4, tzinfo=UTC))
    assert done.measurements is not None
    place.sql("insert into {runs} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
              " ?)", RUN, done.drill, done.topology.value, done.scenario.value,
              done.environment, done.owner, done.trigger.value, done.operator, done.spec_hash,
              "{}", instant(place, done.started_at), instant(place, done.ended_at),
              done.outcome.value, done.measurements.recovery_time,
              done.measurements.data_loss_window, done.model_dump_json(), RUN, None)
    place.sql("insert into {chain} values (?, ?, ?, ?, ?, ?, ?, ?)", entry.seq, entry.run_id,
              entry.record_digest, json.dumps(entry.evidence, sort_keys=True),
              entry.evidence_digest, entry.prev_digest, entry.digest,
              instant(place, entry.sealed_at))
    # schema 4 -> 5 (approvals): a shared PostgreSQL store upgrades by 'store migrate' only
    store = place.open(results_dir=tmp_path / "results",
                       migrate=place.kind is Kind.POSTGRESQL)
    assert store.get(RUN) == done
    [row] = store.list_runs()
    assert row.run_id == RUN and row.outcome is Outcome.PASSED
    report = integrity.verify(store.sealed_records(), store.unsealed_runs(), running=0,
                              results_dir=tmp_path / "results")
    assert report.problems == []
    store.close()


def instant(place: Place, moment: datetime | None) -> object:
    """``moment`` as the earlier versions stored it in this kind of store."""
    return moment.isoformat() if place.kind is Kind.SQLITE and moment else moment


def old_store_with_a_finished_run(place: Place, tmp_path: Path) -> Path:
    """A schema 1 store (no chain yet) with one finished run whose evidence is on disk at
    its absolute path; that evidence directory."""
    place.historic(1)
    done = make_run(tmp_path, RUN, "hot-warm-failover", datetime(2026, 1, 15, 3, tzinfo=UTC),
                    Outcome.PASSED, 1.2)
    assert done.measurements is not None
    place.sql("insert into {runs} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              RUN, done.drill, done.topology.value, done.scenario.value, done.environment,
              done.owner, done.trigger.value, done.operator, done.spec_hash, "{}",
              instant(place, done.started_at), instant(place, done.ended_at),
              done.outcome.value, done.measurements.recovery_time,
              done.measurements.data_loss_window, done.model_dump_json(), done.evidence_dir)
    return Path(done.evidence_dir)


def test_an_older_schema_is_upgraded_as_the_migration_policy_says(
        place: Place, tmp_path: Path) -> None:
    old_store_with_a_finished_run(place, tmp_path)
    if place.kind is Kind.POSTGRESQL:  # shared: only 'dalp-dr store migrate' upgrades it
        with pytest.raises(StoreError, match=r"schema version 1 is older than this dalp-dr "
                                             r"\(5\)") as refused:
            open_store(place.url)
        assert refused.value.hint_ref is not None
        assert refused.value.hint_ref.key is HintKey.MIGRATE_STORE
        assert place.sql("select version from {schema_version}") == [(1,)]
    store = open_store(place.url, migrate=place.kind is Kind.POSTGRESQL)
    assert store.migrated_from == 1  # type: ignore[attr-defined]
    store.close()
    assert place.sql("select version from {schema_version}") == [(5,)]
    again = open_store(place.url)
    assert again.migrated_from is None  # type: ignore[attr-defined]
    assert again.acquire_lease("environment:lab", "h", "i", 10).holder == "h"
    again.close()


def test_an_upgrade_seals_the_records_finished_before_the_chain_with_their_evidence(
        place: Place, tmp_path: Path) -> None:
    evidence = old_store_with_a_finished_run(place, tmp_path)
    store = place.open(migrate=True)
    [record] = store.sealed_records()
    assert record.entry.run_id == RUN
    assert record.entry.evidence == integrity.evidence_manifest(evidence) != {}
    assert [r.evidence_dir for r in store.list_runs()] == [str(evidence)]  # made relative,
    assert place.sql("select evidence_dir from {runs}") == [(RUN,)]  # found where it was
    assert integrity.verify(store.sealed_records(), store.unsealed_runs(), running=0,
                            results_dir=place.results).problems == []
    store.close()


def test_a_newer_schema_is_refused(place: Place) -> None:
    place.open().close()
    place.sql("update {schema_version} set version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer than this dalp-dr"):
        open_store(place.url, migrate=True)
