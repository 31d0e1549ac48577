"""The WAL-heavy restore bench's pure parts (bench/hot_cold_restore.py and its helpers): the
WAL segment range the floor fetches, the quoting of what reaches PostgreSQL's settings and
restore_command's shell, and the verdicts against the targets. The bench itself runs on the
real labs (bench/hot_cold_restore.py; figures in docs/backup-tools.md)."""

from __future__ import annotations

import shlex

from bench.hot_cold_restore import BACKENDS, ROOT, Row, ratios
from bench.scratch_cluster import conf_literal, lsn
from bench.wal_load import segments
from dalp_dr.object_store import restore_command_words as shell_words

MIB = 1048576


def test_segments_cross_a_log_boundary() -> None:
    names = segments("0000000100000000000000FE", "000000010000000100000001", 0x100)
    assert names == ["0000000100000000000000FE", "0000000100000000000000FF",
                     "000000010000000100000000", "000000010000000100000001"]
    assert segments("00000002000000000000000A", "00000002000000000000000A", 0x100) == [
        "00000002000000000000000A"]


def test_lsn() -> None:
    assert lsn("1/5A0000A0") == (1 << 32) + 0x5A0000A0


def test_restore_command_quoting() -> None:
    # a % is PostgreSQL's: written %%; a space or quote stays in its word for the shell
    assert shell_words("/x y/100%", "it's") == "'/x y/100%%' 'it'\"'\"'s'"
    assert shlex.split(shell_words("/x y", "a")) == ["/x y", "a"]
    assert conf_literal("a'b\\c") == "'a''b\\\\c'"


def test_every_backend_maps_to_files_that_exist() -> None:
    for backend in BACKENDS.values():
        assert (ROOT / backend.inventory).is_file()
        assert (ROOT / backend.drill).is_file()
        assert (ROOT / "playbooks" / backend.lab / "lab-up.yml").is_file()


def rows(backend: str, drill: float, hand: float, floor: float,
         verify: float | None = None) -> list[Row]:
    extra = {"verify (pgbackrest verify)": verify} if verify is not None else {}
    return [Row(backend, "drill", 1.0, 100 * MIB, drill, 1100 * MIB, extra),
            Row(backend, "by hand", 1.0, 100 * MIB, hand, 1100 * MIB),
            Row(backend, "floor", None, None, floor, 1100 * MIB)]


def test_ratios_and_verdicts() -> None:
    found = {r["figure"]: r for r in ratios("pgbackrest", rows("pgbackrest", 14.0, 11.0, 9.0,
                                                               verify=20.0))}
    assert found["drill / by hand, total restore time"]["ratio"] == 1.25
    assert found["drill / by hand, total restore time"]["verdict"] == "MISSED"
    assert found["drill / by hand, total with the drill's verify"]["target"] is None
    assert found["by hand WAL replay / floor"]["verdict"] == "met"  # 11 / 9 = 1.22
    assert found["drill WAL replay / floor"]["verdict"] == "MISSED"  # 14 / 9 = 1.56
    barman = {r["figure"]: r for r in ratios("barman-cloud", rows("barman-cloud", 9.0, 50.0,
                                                                   9.0))}
    assert barman["drill / by hand, total restore time"]["verdict"] == "met"
    assert barman["drill WAL replay / floor"]["verdict"] == "met"
    # barman-cloud by hand fetches one file per process, nothing ahead: no target
    assert barman["by hand WAL replay / floor"]["target"] is None
    assert barman["by hand WAL replay / floor"]["verdict"] == "-"
    assert "drill / by hand, total with the drill's verify" not in barman
