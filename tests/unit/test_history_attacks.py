"""The history as a hostile reviewer tries it: a chain rewritten wholesale and re-sealed, a
truncated chain, a forged or deleted checkpoint log, an edited summary column, a results
directory moved or restored elsewhere. Real SQLite stores, real evidence files, real keys;
the CLI runs in process."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dalp_dr import integrity
from dalp_dr.checkpoints import LOG_NAME
from dalp_dr.commands import main
from dalp_dr.config import load_settings
from dalp_dr.export import keys
from dalp_dr.history import open_history
from dalp_dr.results import Outcome
from tests.factories import (
    SEALED_RUNS,
    make_run,
    record_configured,
    reseal_from,
    sealed_runs,
)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self._capsys.readouterr()
        code = main(list(args))
        captured = self._capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A history of three sealed runs recorded with a signing key (every seal signed into
    the checkpoint log), in tmp_path/results."""
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "keys"))
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    monkeypatch.delenv("DALP_DR_WITNESS", raising=False)
    keys.init(tmp_path / "keys")
    record_configured(sealed_runs(tmp_path))
    yield tmp_path


def db(base: Path) -> sqlite3.Connection:
    return sqlite3.connect(base / "results" / "history.sqlite")


def reseal_everything(base: Path, run_id: str, edit: dict[str, object]) -> None:
    reseal_from(base / "results" / "history.sqlite", run_id, edit)


def test_every_seal_writes_a_signed_checkpoint_and_verify_holds_the_chain_to_them(
        base: Path, cli: Cli) -> None:
    lines = (base / "results" / LOG_NAME).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    code, out, err = cli("history", "verify")
    assert code == 0, err
    assert "history intact: 3 sealed records" in out and "3 signed checkpoint(s) agree" in out
    code, out, _ = cli("history", "checkpoint")
    assert code == 0 and out.startswith("checkpoint 3:")
    head = out.split()[1]
    assert cli("history", "verify", "--expect-head", head)[0] == 0


def test_a_chain_rewritten_wholesale_contradicts_its_signed_checkpoints(base: Path,
                                                                         cli: Cli) -> None:
    code, out, _ = cli("history", "checkpoint")
    head_before = out.split()[1]
    reseal_everything(base, "20260401T030000Z-bbbbbb", {"outcome": "passed"})
    # the chain itself links again: only the checkpoints can tell
    store = open_history(load_settings())
    try:
        report = integrity.verify(store.sealed_records(), store.unsealed_runs(), 0,
                                  results_dir=store.results_dir)
    finally:
        store.close()
    assert report.problems == []
    code, _out, err = cli("history", "verify")
    assert code == 1
    assert "history TAMPERED" in err and "contradicts signed checkpoint #2" in err
    code, _out, err = cli("history", "verify", "--expect-head", head_before)
    assert code == 1 and "is not in this chain" in err
    # the export refuses what verify rejects
    code, _out, err = cli("export", "--format", "json")
    assert code == 1 and "not exported" in err


def test_a_forged_or_deleted_checkpoint_log_does_not_pass(base: Path, cli: Cli) -> None:
    log = base / "results" / LOG_NAME
    reseal_everything(base, "20260401T030000Z-bbbbbb", {"outcome": "passed"})
    # the attacker rewrites the log with their own key's checkpoints of the new heads
    forged_keys = base / "forged"
    keys.init(forged_keys)
    private = keys.load_private(forged_keys)
    from dalp_dr.checkpoints import sign

    conn = db(base)
    heads = conn.execute("select seq, digest from chain order by seq").fetchall()
    conn.close()
    log.write_text("".join(sign(private, s, d, datetime.now(UTC)).line() for s, d in heads))
    code, _out, err = cli("history", "verify")
    assert code == 1 and "not signed by this history's key" in err
    # or empties it, or deletes it
    log.write_text("")
    code, _out, err = cli("history", "verify")
    assert code == 1 and "no signed checkpoint pins this history" in err
    log.unlink()
    code, _out, err = cli("history", "verify")
    assert code == 1 and "no signed checkpoint pins this history" in err


def test_a_log_cut_short_leaves_the_rewritten_tail_unpinned(base: Path, cli: Cli) -> None:
    log = base / "results" / LOG_NAME
    log.write_text(log.read_text().splitlines()[0] + "\n")  # keeps #1, drops #2 and #3
    reseal_everything(base, "20260401T030000Z-bbbbbb", {"outcome": "passed"})
    code, _out, err = cli("history", "verify")
    assert code == 1 and "history NOT VERIFIED" in err
    assert "entries #2..#3 were sealed after the newest signed checkpoint (#1)" in err
    code, _out, err = cli("export", "--format", "csv")
    assert code == 1 and "not exported" in err
    # the next genuine seal does not pin what it cannot vouch for
    record_configured([make_run(base, "20261101T030000Z-eeeeee", "hot-warm-failover",
                                datetime(2026, 11, 1, 3, tzinfo=UTC), Outcome.PASSED, 1.0)])
    assert len(log.read_text().splitlines()) == 1
    code, _out, err = cli("history", "verify")
    assert code == 1 and "entries #2..#4" in err
    # pinning is a reviewed, explicit act
    code, _out, err = cli("history", "checkpoint", "--sign")
    assert code == 0 and "pinning entries #2..#4 as they are now" in err
    assert cli("history", "verify")[0] == 0


def test_a_forged_record_appended_after_the_last_checkpoint_is_not_pinned(
        base: Path, cli: Cli) -> None:
    conn = db(base)
    result_json, spec_json = conn.execute(
        "select result_json, spec_json from runs where run_id = '20260115T030000Z-aaaaaa'"
    ).fetchone()
    forged = json.loads(result_json) | {"run_id": "20261101T030000Z-ffffff",
                                         "started_at": "2026-11-01T03:00:00Z"}
    head = conn.execute("select digest from chain where seq = 3").fetchone()[0]
    entry = integrity.seal(4, "20261101T030000Z-ffffff", json.dumps(forged), spec_json, {},
                           head, datetime.now(UTC))
    conn.execute("insert into runs (run_id, drill, topology, scenario, environment, owner,"
                 " trigger, operator, spec_hash, spec_json, started_at, outcome, result_json,"
                 " evidence_dir) select ?, drill, topology, scenario, environment, owner,"
                 " trigger, operator, spec_hash, spec_json, ?, outcome, ?, '' from runs"
                 " where run_id = '20260115T030000Z-aaaaaa'",
                 ("20261101T030000Z-ffffff", "2026-11-01T03:00:00+00:00", json.dumps(forged)))
    conn.execute("insert into chain values (?, ?, ?, ?, ?, ?, ?, ?)",
                 (4, entry.run_id, entry.record_digest, "{}", entry.evidence_digest,
                  entry.prev_digest, entry.digest, entry.sealed_at.isoformat()))
    conn.commit()
    conn.close()
    code, _out, err = cli("history", "verify")
    assert code == 1 and "entries #4..#4 were sealed after the newest signed checkpoint" in err
    record_configured([make_run(base, "20261102T030000Z-gggggg", "hot-warm-failover",
                                datetime(2026, 11, 2, 3, tzinfo=UTC), Outcome.PASSED, 1.0)])
    assert len((base / "results" / LOG_NAME).read_text().splitlines()) == 3  # not signed
    assert cli("history", "verify")[0] == 1


def test_the_global_keys_option_pins_and_checks(tmp_path: Path, cli: Cli,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "default-keys"))  # no key there
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    elsewhere = tmp_path / "etc-keys"
    assert cli("--keys", str(elsewhere), "keys", "init")[0] == 0
    monkeypatch.setenv("DALP_DR_KEYS", str(elsewhere))
    record_configured(sealed_runs(tmp_path))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "default-keys"))
    reseal_everything(tmp_path, "20260401T030000Z-bbbbbb", {"outcome": "passed"})
    code, _out, err = cli("--keys", str(elsewhere), "history", "verify")
    assert code == 1 and "contradicts signed checkpoint #2" in err
    code, _out, err = cli("export", "--keys", str(elsewhere), "--bundle",
                          str(tmp_path / "b.tar.gz"))
    assert code == 1 and "not exported" in err


def test_a_retired_key_still_pins_and_a_revoked_one_no_longer_does(base: Path,
                                                                    cli: Cli) -> None:
    keys.init(base / "keys", force=True)  # rotation: the old key is retired, still trusted
    code, out, err = cli("history", "verify")
    assert code == 0 and "3 signed checkpoint(s) agree" in out, err
    assert cli("history", "checkpoint", "--sign")[0] == 0  # pinned by the new key too
    keys.init(base / "keys", force=True, revoke=True)  # that one leaked: revoked
    code, _out, err = cli("history", "verify")
    assert code == 0, err  # the retired key's checkpoints still pin the chain
    assert "ignored 1 checkpoint(s) signed by the revoked key" in err
    for retired in (base / "keys" / keys.RETIRED).glob("*.pem"):
        retired.unlink()  # and if the first one was revoked too: nothing pins it any more
    code, _out, err = cli("history", "verify")
    assert code == 1 and "no signed checkpoint pins this history" in err


def test_an_altered_checkpoint_line_is_named(base: Path, cli: Cli) -> None:
    log = base / "results" / LOG_NAME
    lines = log.read_text().splitlines()
    altered = json.loads(lines[1])
    altered["head"] = "f" * 64
    log.write_text("\n".join([lines[0], json.dumps(altered), lines[2], "not json"]) + "\n")
    code, _out, err = cli("history", "verify")
    assert code == 1
    assert "signed checkpoint #2" in err and "signature does not hold" in err
    assert "line 4: not a checkpoint" in err


def test_a_truncated_chain_contradicts_the_newest_checkpoint(base: Path, cli: Cli) -> None:
    conn = db(base)
    conn.execute("delete from chain where seq = 3")
    conn.execute("delete from runs where run_id = '20260701T030000Z-cccccc'")
    conn.commit()
    conn.close()
    code, _out, err = cli("history", "verify")
    assert code == 1 and "the chain ends at #2" in err


def test_a_history_without_a_key_says_it_is_not_pinned(tmp_path: Path, cli: Cli,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "no-keys"))
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    record_configured(sealed_runs(tmp_path, 1))
    assert not (tmp_path / "results" / LOG_NAME).exists()
    code, _out, err = cli("history", "verify")
    assert code == 0 and "NOT PINNED" in err
    code, out, err = cli("export", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["export"]["history_verification"]["pinned"] is False
    assert "NOT PINNED" in " ".join(document["export"]["history_verification"]["notes"])
    # a key created later: verify fails closed until the current head is signed once
    keys.init(tmp_path / "no-keys")
    code, _out, err = cli("history", "verify")
    assert code == 1 and "history checkpoint --sign" in err
    assert cli("history", "checkpoint", "--sign")[0] == 0
    assert cli("history", "verify")[0] == 0


def test_an_edited_column_is_not_shown_as_sealed_truth_and_not_exported(base: Path,
                                                                         cli: Cli) -> None:
    conn = db(base)
    conn.execute("update runs set outcome = 'passed', recovery_time = 4.2"
                 " where run_id = '20260401T030000Z-bbbbbb'")
    conn.commit()
    conn.close()
    code, out, err = cli("history", "list", "--json")
    assert code == 0 and "warning: history does NOT verify" in err
    row = next(r for r in json.loads(out) if r["run_id"] == "20260401T030000Z-bbbbbb")
    assert (row["outcome"], row["recovery_time"], row["seal"]) == ("missed", 2400.0,
                                                                    "row_edited")
    assert "column 'outcome' changed" in row["seal_problem"]
    others = [r["seal"] for r in json.loads(out) if r["run_id"] != row["run_id"]]
    assert others == ["sealed", "sealed"]
    code, out, err = cli("history", "list")
    assert code == 0 and "ROW EDITED" in out and "history does NOT verify" in err
    code, out, err = cli("history", "show", "20260401T030000Z-bbbbbb")
    assert code == 1 and "does NOT match its seal (row_edited)" in err
    assert "outcome: MISSED" in out  # the record as sealed
    # a run hidden from the page by an edited start time is still caught
    conn = db(base)
    conn.execute("update runs set started_at = '1970-01-01T00:00:00+00:00'"
                 " where run_id = '20260401T030000Z-bbbbbb'")
    conn.commit()
    conn.close()
    code, out, err = cli("history", "list", "--limit", "2", "--json")
    assert "20260401T030000Z-bbbbbb" not in out
    assert "20260401T030000Z-bbbbbb" in err  # named in the warning all the same
    assert cli("history", "verify")[0] == 1
    keys_dir = base / "keys"
    code, _out, err = cli("export", "--bundle", str(base / "b.tar.gz"), "--keys",
                          str(keys_dir))
    assert code == 1 and "not exported" in err and not (base / "b.tar.gz").exists()


def test_a_moved_results_directory_verifies_and_exports_its_own_bytes(
        base: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = base / "restored" / "results"
    moved.parent.mkdir()
    shutil.move(base / "results", moved)
    monkeypatch.setenv("DALP_DR_RESULTS", str(moved))
    code, out, err = cli("history", "verify")
    assert code == 0, err
    code, out, err = cli("history", "list", "--json")
    assert json.loads(out)[0]["evidence_dir"].startswith(str(moved))
    code, _out, err = cli("export", "--bundle", str(base / "moved.tar.gz"))
    assert code == 0, err
    import tarfile

    with tarfile.open(base / "moved.tar.gz") as tar:
        member = tar.extractfile("evidence/20260401T030000Z-bbbbbb/summary.txt")
        assert member is not None and member.read() == b"hot-warm-failover missed\n"
    # an edited file in the moved copy is named, even with the original back in place
    shutil.copytree(moved, base / "results")
    (moved / "20260401T030000Z-bbbbbb" / "summary.txt").write_text("hot-warm passed\n")
    code, _out, err = cli("history", "verify")
    assert code == 1
    assert f"evidence file changed: {moved}/20260401T030000Z-bbbbbb/summary.txt" in err
    # evidence that is simply not there is not called tampering
    (moved / "20260401T030000Z-bbbbbb" / "summary.txt").write_text(
        "hot-warm-failover missed\n")
    shutil.rmtree(moved / "20260701T030000Z-cccccc")
    code, _out, err = cli("history", "verify")
    assert code == 1 and "history NOT VERIFIED" in err and "TAMPERED" not in err
    assert f"evidence for run 20260701T030000Z-cccccc not found under {moved} " \
           "(moved or not restored?)" in err


def test_a_schema_3_history_is_migrated_with_its_digests_unchanged(base: Path,
                                                                   cli: Cli) -> None:
    conn = db(base)
    before = conn.execute("select seq, digest from chain order by seq").fetchall()
    rows = conn.execute("select run_id, evidence_dir from runs").fetchall()
    assert all(not Path(e).is_absolute() for _r, e in rows)  # stored relative
    for run_id, evidence in rows:  # as schema 3 stored them: absolute
        conn.execute("update runs set evidence_dir = ? where run_id = ?",
                     (str(base / "results" / evidence), run_id))
    conn.execute("update schema_version set version = 3")
    conn.commit()
    conn.close()
    assert cli("history", "verify")[0] == 0  # opening migrates
    conn = db(base)
    assert conn.execute("select version from schema_version").fetchall() == [(5,)]
    assert conn.execute("select seq, digest from chain order by seq").fetchall() == before
    assert {e for _r, e in conn.execute("select run_id, evidence_dir from runs")} == \
        {r[0] for r in SEALED_RUNS}
    conn.close()


def test_evidence_history_and_checkpoints_are_the_owners_alone(base: Path) -> None:
    results = base / "results"
    assert stat.S_IMODE(results.stat().st_mode) == 0o700
    for path in [results / "history.sqlite", results / LOG_NAME,
                 *(results / "20260115T030000Z-aaaaaa").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_group_access_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DALP_DR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DALP_DR_KEYS", str(tmp_path / "keys"))
    monkeypatch.setenv("DALP_DR_GROUP_ACCESS", "1")
    record_configured(sealed_runs(tmp_path, 1))
    evidence = tmp_path / "results" / "20260115T030000Z-aaaaaa" / "summary.txt"
    assert stat.S_IMODE(evidence.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "results" / "history.sqlite").stat().st_mode) == 0o640


def test_results_are_relocated_by_run_id_not_by_the_absolute_path() -> None:
    assert integrity.relative_evidence("/var/lib/dalp-dr/results/R1") == "R1"
    assert integrity.relative_evidence("R1") == "R1"
    assert integrity.evidence_location("/old/results/R1", Path("/new")) == Path("/new/R1")
    assert integrity.evidence_location("", Path("/new")) is None
