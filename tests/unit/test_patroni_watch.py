"""The cloud-native recovery timeline, from observer records captured on the lab cluster.

The two data files are real ``patroni_watch.py watch`` output from drills on the lab
(ttl 6 s, loop_wait 1 s): a postmaster SIGKILL (Patroni releases nothing, a replica takes
the key over) and a node loss (Patroni gone too: the key must expire).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from dalp_dr.patroni_watch import load, main, summarize

DATA = Path(__file__).parent / "data"
NODE_LOSS_FAULT = 1795739161.634  # dalp_fault_instant of that run
POSTMASTER_KILL_FAULT = 1795739062.966


def names(summary: dict[str, Any]) -> list[str]:
    return [e["event"] for e in summary["events"]]


def at(summary: dict[str, Any], name: str) -> float:
    when: float = next(e["at"] for e in summary["events"] if e["event"] == name)
    return when


def test_node_loss_waits_for_the_leader_key_to_expire() -> None:
    summary = summarize(load(str(DATA / "patroni-watch-node-loss.jsonl")), "pg1",
                        NODE_LOSS_FAULT)
    assert summary["new_leader"] == "pg3"
    assert names(summary) == ["leader key gone", "new leader elected", "new primary promoted",
                              "sync standby set", "old leader rejoined", "cluster whole"]
    gone = at(summary, "leader key gone") - NODE_LOSS_FAULT
    assert 4.5 < gone <= 6.2  # ttl 6 s, refreshed every loop_wait (1 s) before the loss
    assert "key absent: released or expired" in summary["events"][0]["detail"]
    # the key is taken before PostgreSQL is promoted, and the cluster is whole last
    assert at(summary, "new leader elected") < at(summary, "new primary promoted")
    assert at(summary, "cluster whole") == max(e["at"] for e in summary["events"])
    # while pg1 was down (connection refused, then "demoted"/"starting") it is not "rejoined"
    assert at(summary, "old leader rejoined") == 1795739173.851


def test_postmaster_kill_key_taken_over_directly() -> None:
    records = load(str(DATA / "patroni-watch-postmaster-kill.jsonl"))
    summary = summarize(records, "pg3", POSTMASTER_KILL_FAULT)
    assert summary["new_leader"] == "pg2"
    gone = summary["events"][0]
    assert gone["event"] == "leader key gone" and "taken over by pg2" in gone["detail"]
    assert at(summary, "cluster whole") - POSTMASTER_KILL_FAULT < 10


def test_no_new_leader_gives_no_election_and_keeps_the_last_observation() -> None:
    records = [r for r in load(str(DATA / "patroni-watch-node-loss.jsonl"))
               if r["dcs"].get("leader") == "pg1"]
    summary = summarize(records, "pg1", NODE_LOSS_FAULT)
    assert summary["new_leader"] is None and summary["events"] == []
    assert summary["last"]["rest"]["pg1"] == {"error": "[Errno 111] Connection refused"}


def test_dcs_unreachable_is_not_a_lost_leader_key() -> None:
    records = load(str(DATA / "patroni-watch-node-loss.jsonl"))
    cut = [{**r, "dcs": {"error": "connection refused"}} if r["t"] > NODE_LOSS_FAULT else r
           for r in records]
    assert summarize(cut, "pg1", NODE_LOSS_FAULT)["events"] == []


def test_summary_command_tolerates_a_line_cut_by_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "watch.jsonl"
    text = (DATA / "patroni-watch-node-loss.jsonl").read_text()
    path.write_text(text + '{"t": 17957391, "dcs": {"lea')
    assert main(["summary", str(path), "--old-leader", "pg1",
                 "--since", str(NODE_LOSS_FAULT)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["new_leader"] == "pg3" and len(out["events"]) == 6


def test_summary_command_missing_file_fails(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path / "absent.jsonl"), "--old-leader", "pg1"]) == 1
    assert "cannot read" in capsys.readouterr().err
