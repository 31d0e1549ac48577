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
                              "sync standby set", "old leader rejoined", "cluster whole",
                              "old leader demoted"]
    gone = at(summary, "leader key gone") - NODE_LOSS_FAULT
    assert 4.5 < gone <= 6.2  # ttl 6 s, refreshed every loop_wait (1 s) before the loss
    assert "key absent: released or expired" in summary["events"][0]["detail"]
    # the key is taken before PostgreSQL is promoted, and the cluster is whole last
    assert at(summary, "new leader elected") < at(summary, "new primary promoted")
    assert at(summary, "cluster whole") == max(e["at"] for e in summary["events"])
    # while pg1 was down (connection refused, then "demoted"/"starting") it is not "rejoined"
    assert at(summary, "old leader rejoined") == 1795739173.851
    # its REST API refused connections from the loss on: it is seen demoted only when its
    # Patroni answers again (after the node came back), never from a poll left unanswered
    assert at(summary, "old leader demoted") == 1795739170.575
    assert summary["events"][-1]["detail"] == (
        "pg1 runs as primary no more: role demoted, state stopped (its REST API had not "
        "answered since it was last seen a running primary: it may have stopped earlier)")


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
    # (the old leader's own REST answers still show it demoted: that is not the DCS's word)
    assert names(summarize(cut, "pg1", NODE_LOSS_FAULT)) == ["old leader demoted"]


def test_summary_command_tolerates_a_line_cut_by_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "watch.jsonl"
    text = (DATA / "patroni-watch-node-loss.jsonl").read_text()
    path.write_text(text + '{"t": 17957391, "dcs": {"lea')
    assert main(["summary", str(path), "--old-leader", "pg1",
                 "--since", str(NODE_LOSS_FAULT)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["new_leader"] == "pg3" and len(out["events"]) == 7


def test_summary_command_missing_file_fails(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path / "absent.jsonl"), "--old-leader", "pg1"]) == 1
    assert "cannot read" in capsys.readouterr().err


def isolation(*pg1: tuple[float, dict[str, Any]]) -> list[dict[str, Any]]:
    """Observer records of a leader isolation: pg1 leads until the fault at t=100; from t=106
    pg2 holds the key; pg1's REST API (reached from the controller) says ``pg1``."""
    records = []
    for t, obs in ((99.0, {"role": "primary", "state": "running", "timeline": 1}), *pg1):
        leader = "pg1" if t < 106 else "pg2"
        records.append({"t": t, "dcs": {"leader": leader, "sync": None, "members": {}},
                        "rest": {"pg1": obs, "pg2": {"role": "replica", "state": "running",
                                                     "timeline": 1}}})
    return records


def test_an_isolated_leader_seen_demoting_itself() -> None:
    summary = summarize(isolation(
        (100.2, {"role": "primary", "state": "running", "timeline": 1}),
        (101.0, {"error": "timed out"}),
        (101.2, {"role": "primary", "state": "running", "timeline": 1}),
        (101.4, {"error": "timed out"}),
        (102.6, {"role": "primary", "state": "stopping", "timeline": None}),
        (104.0, {"role": "replica", "state": "running", "timeline": 1}),
        (106.5, {"role": "replica", "state": "running", "timeline": 1})), "pg1", 100.0)
    assert at(summary, "old leader demoted") == 102.6  # writes refused from stopping on
    demoted = next(e for e in summary["events"] if e["event"] == "old leader demoted")
    assert demoted["detail"] == ("pg1 runs as primary no more: role primary, state stopping "
                                 "(its REST API had not answered since it was last seen a "
                                 "running primary: it may have stopped earlier)")
    assert at(summary, "new leader elected") == 106.5
    # answered without a gap: nothing to qualify
    answered = isolation((102.6, {"role": "replica", "state": "stopped",
                                    "timeline": None}))
    (event,) = summarize(answered, "pg1", 100.0)["events"]
    assert event["detail"] == "pg1 runs as primary no more: role replica, state stopped"


def test_a_leader_never_seen_answering_again_is_not_seen_demoted() -> None:
    summary = summarize(isolation((100.5, {"error": "timed out"}),
                                  (107.0, {"error": "timed out"})), "pg1", 100.0)
    assert "old leader demoted" not in names(summary)
    # nor one never seen running as primary at all
    records = isolation((101.0, {"role": "replica", "state": "running", "timeline": 1}))[1:]
    assert "old leader demoted" not in names(summarize(records, "pg1", 100.0))
