"""The divergence module's reading of pg_waldump's text and of a timeline history file
(``dalp_dr/wal_divergence.py``). The text is PostgreSQL 15's pg_waldump output (TZ=UTC), as
recorded from a real cluster; the module itself runs pg_waldump in the lab tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dalp_dr.wal_divergence import (
    LOST_LISTED,
    conninfo_dbname,
    lsn_text,
    lsn_value,
    parse_history,
    run_walk,
    walk,
)

HEAP = ("rmgr: Heap        len (rec/tot):     61/    61, tx:        {xid}, lsn: {lsn}, "
        "prev 0/01524858, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/{rel} blk 0")
INDEX = ("rmgr: Btree       len (rec/tot):     64/    64, tx:        {xid}, lsn: {lsn}, "
         "prev 0/01524898, desc: INSERT_LEAF off 2, blkref #0: rel 1663/5/{rel} blk 1")
END = ("rmgr: Transaction len (rec/tot):     34/    34, tx:        {xid}, lsn: {lsn}, "
       "prev 0/01524E98, desc: {kind} 2026-12-04 23:12:00.{frac} UTC{tail}")
CHECKPOINT = ("rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: {lsn}, "
              "prev 0/01525050, desc: CHECKPOINT_ONLINE redo 0/1525078")


def text(*lines: str) -> list[str]:
    return [line + "\n" for line in lines]


FORK = "0/01525000"
WAL = text(
    HEAP.format(xid=720, lsn="0/01524000", rel=16384),
    END.format(xid=720, lsn="0/01524100", kind="COMMIT", frac="100000", tail=""),
    # a long transaction: wrote before the fork, committed after it (lost whole)
    HEAP.format(xid=721, lsn="0/01524200", rel=16390),
    HEAP.format(xid=722, lsn="0/01525000", rel=16384),  # at the fork: not replicated
    INDEX.format(xid=722, lsn="0/01525040", rel=16389),
    HEAP.format(xid=723, lsn="0/01525080", rel=16400),  # a subtransaction of 722
    END.format(xid=722, lsn="0/015250C0", kind="COMMIT", frac="300000",
               tail="; subxacts: 723; inval msgs: catcache 80"),
    END.format(xid=721, lsn="0/01525100", kind="COMMIT", frac="400000", tail=""),
    HEAP.format(xid=724, lsn="0/01525140", rel=16384),
    END.format(xid=724, lsn="0/01525180", kind="ABORT", frac="500000", tail=""),
    HEAP.format(xid=725, lsn="0/015251C0", rel=16384),  # never committed: not lost
    CHECKPOINT.format(lsn="0/01525200"),
    "pg_waldump: error: error in WAL record at 0/1525200: invalid record length",
)


def test_commits_at_or_after_the_fork_are_lost_with_what_they_wrote() -> None:
    found = walk(WAL, lsn_value(FORK))

    lost = {t["xid"]: t for t in found["lost"]}
    assert sorted(lost) == [721, 722]
    # the subtransaction's writes belong to its top-level transaction
    assert lost[722]["relations"] == ["1663/5/16384", "1663/5/16389", "1663/5/16400"]
    assert lost[722]["records"] == 4  # heap, index, subxact heap, commit
    assert lost[722]["committed_at"] == "2026-12-04T23:12:00.300000+00:00"
    assert lost[721]["relations"] == ["1663/5/16390"]  # written before the fork
    assert found["aborted_after_fork"] == 1
    assert found["unfinished_after_fork"] == 1  # 725
    assert found["newest_surviving_commit_at"] == "2026-12-04T23:12:00.100000+00:00"
    assert found["end_lsn"] == "0/1525272"  # the checkpoint record's end


def test_nothing_past_the_fork_loses_nothing() -> None:
    found = walk(WAL[:2], lsn_value(FORK))
    assert found["lost"] == [] and found["aborted_after_fork"] == 0
    assert found["newest_surviving_commit_at"] is not None


def test_a_prepared_transaction_is_lost_by_its_own_id() -> None:
    line = ("rmgr: Transaction len (rec/tot):     50/    50, tx:          0, lsn: 0/01525100, "
            "prev 0/015250C0, desc: COMMIT_PREPARED 730: 2026-12-04 23:12:01.000000 UTC")
    found = walk(text(HEAP.format(xid=730, lsn="0/01524000", rel=16384), line),
                 lsn_value(FORK))
    assert [(t["xid"], t["relations"]) for t in found["lost"]] == [(730, ["1663/5/16384"])]


def test_the_history_file_names_the_fork_of_the_new_timeline() -> None:
    history = "1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tat restore point\n"
    assert parse_history(history, 3) == (2, lsn_value("0/5000000"))
    assert lsn_text(parse_history(history, 3)[1]) == "0/5000000"


@pytest.mark.parametrize("history", ["", "# comment only\n", "1\n", "1 zz/1 reason\n",
                                     "3\t0/5000000\tno\n"])
def test_a_history_that_does_not_hold_together_is_refused(history: str) -> None:
    with pytest.raises(ValueError):
        parse_history(history, 3)


def test_lines_that_are_not_records_are_ignored() -> None:
    noise = text("first record is after 0/1524600, at 0/1524638, skipping over 56 bytes",
                 "rmgr: Heap len garbage", "")
    assert walk(noise, lsn_value(FORK))["lost"] == []


# run_walk end to end over fake PostgreSQL binaries (a fake pg_controldata and pg_waldump:
# shell scripts in tmp_path printing what the real ones print); the real ones run in the lab
# tests (test_20, test_40).
def fake_bin(tmp_path: Path, timeline: int, waldump: str, rc: int = 1) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_controldata").write_text(
        "#!/bin/sh\n[ -d \"$1\" ] || { echo \"pg_controldata: error: could not open file "
        "\\\"$1/global/pg_control\\\"\" >&2; exit 1; }\n"
        f"echo \"Latest checkpoint's TimeLineID:       {timeline}\"\n"
        "echo \"Bytes per WAL segment:                16777216\"\n")
    (bindir / "pg_waldump").write_text(
        f"#!/bin/sh\ncat <<'WAL'\n{waldump}WAL\n"
        "echo 'pg_waldump: error: error in WAL record at 0/1525200: invalid record length' >&2\n"
        f"exit {rc}\n")
    for tool in bindir.iterdir():
        tool.chmod(0o755)
    return str(bindir)


def walk_params(tmp_path: Path, pg_bin: str, data_dir: Path | None = None) -> dict[str, Any]:
    data = data_dir or tmp_path / "data"
    data.mkdir(exist_ok=True)
    return {"run_as": [], "pg_bin": pg_bin, "data_dir": str(data), "new_timeline": 2,
            "history": f"1\t{FORK}\tno recovery target specified\n"}


def test_the_old_primary_wal_is_read_past_the_fork(tmp_path: Path) -> None:
    found = run_walk(walk_params(tmp_path, fake_bin(tmp_path, 1, "".join(WAL[:-1]))))
    assert found["available"] is True, found
    assert [t["xid"] for t in found["lost"]] == [722, 721]
    assert (found["fork_lsn"], found["old_timeline"]) == ("0/1525000", 1)


def test_a_rewound_old_primary_is_unavailable_never_zero(tmp_path: Path) -> None:
    found = run_walk(walk_params(tmp_path, fake_bin(tmp_path, 2, "")))
    assert found["available"] is False and "rewound or rebuilt" in found["reason"]


def test_a_lost_disk_is_unavailable(tmp_path: Path) -> None:
    params = walk_params(tmp_path, fake_bin(tmp_path, 1, ""))
    params["data_dir"] = str(tmp_path / "gone")
    found = run_walk(params)
    assert found["available"] is False and "cannot be read" in found["reason"]


def test_wal_that_ends_before_the_fork_is_not_the_one_the_standby_followed(
        tmp_path: Path) -> None:
    early = HEAP.format(xid=700, lsn="0/01400000", rel=16384) + "\n"
    found = run_walk(walk_params(tmp_path, fake_bin(tmp_path, 1, early)))
    assert found["available"] is False and "before the fork" in found["reason"]


def test_wal_that_cannot_be_read_is_unavailable(tmp_path: Path) -> None:
    bindir = fake_bin(tmp_path, 1, "")
    Path(bindir, "pg_waldump").write_text(
        "#!/bin/sh\necho 'pg_waldump: error: could not find file \"000000010000000000000001\": "
        "No such file or directory' >&2\nexit 1\n")
    found = run_walk(walk_params(tmp_path, bindir))
    assert found["available"] is False and "could not find file" in found["reason"]


def test_a_transaction_prepared_before_the_fork_is_not_lost() -> None:
    prepare = ("rmgr: Transaction len (rec/tot):     80/    80, tx:        731, lsn: 0/01524100, "
               "prev 0/01524000, desc: PREPARE gid t1: 2026-12-04 23:12:00.000000 UTC")
    commit = ("rmgr: Transaction len (rec/tot):     50/    50, tx:          0, lsn: 0/01525100, "
              "prev 0/015250C0, desc: COMMIT_PREPARED 731: 2026-12-04 23:12:01.000000 UTC")
    found = walk(text(HEAP.format(xid=731, lsn="0/01524000", rel=16384), prepare, commit),
                 lsn_value(FORK))
    assert found["lost"] == [] and found["prepared_resolved_after_fork"] == 1


def test_lost_transactions_beyond_the_list_are_counted() -> None:
    many = []
    for n in range(LOST_LISTED + 5):
        lsn = 0x01525000 + 0x100 * n
        many += [HEAP.format(xid=1000 + n, lsn=lsn_text(lsn), rel=16384),
                 END.format(xid=1000 + n, lsn=lsn_text(lsn + 0x80), kind="COMMIT",
                            frac=f"{n % 1000000:06d}", tail="")]
    found = walk(text(*many), lsn_value(FORK))
    assert len(found["lost"]) == LOST_LISTED and found["lost_total"] == LOST_LISTED + 5
    assert found["relation_sets"] == [[["1663/5/16384"], LOST_LISTED + 5]]


@pytest.mark.parametrize("name", ["host=evil.example dbname=x", "it's", "back\\slash"])
def test_a_database_name_reaches_psql_as_a_name_only(name: str) -> None:
    # libpq's own parser reads the connection string back: one keyword, the name intact
    from psycopg.conninfo import conninfo_to_dict

    assert conninfo_to_dict(conninfo_dbname(name)) == {"dbname": name}
