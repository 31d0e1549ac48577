"""Hot-hot through a global load balancer: the hot-hot-platform lab (two active PostgreSQL sites
replicating both ways, each site's platform API, HAProxy health-checking both in front of them),
and the site-loss drill measured as each site's clients see it through HAProxy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lab.helpers import (
    LABS,
    ROOT,
    assert_no_secret,
    dalp,
    lab_status,
    run_json,
    take_lab_down,
    timeline_offsets,
)

# one lab per pytest-xdist worker at a time (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("hot-hot-platform")

TOPOLOGY = "hot-hot-platform"
DRILL = ROOT / "drills" / "hot-hot-platform-site-loss.yaml"
LAB = LABS / TOPOLOGY
PASSWORD = "lab-only-3b8f61d0e7"  # inventories/lab/hot-hot-platform.yml: must never be written
FRONTENDS = {"site-a": "http://127.0.0.1:55704", "site-b": "http://127.0.0.1:55705"}
CHECK_INTER, CHECK_FALL = 0.5, 2  # the inventory's dalp_lb_check: a dead site is out after ~1 s


@pytest.fixture(scope="module", autouse=True)
def lab_up() -> None:
    started = time.monotonic()
    proc = dalp("lab", "up", TOPOLOGY)
    assert proc.returncode == 0, proc.stderr
    print(f"\nlab up {TOPOLOGY}: {time.monotonic() - started:.1f} s")


def serving() -> dict[str, str | None]:
    """Where HAProxy sends each site's clients (its own view, through its runtime API)."""
    backends = lab_status(TOPOLOGY)["load_balancer"]["backends"]
    return {site: backends[f"{site}-first"]["serving"] for site in FRONTENDS}


def assert_steady() -> None:
    status = lab_status(TOPOLOGY)
    for name, site in status["sites"].items():
        assert site["accepting"] and site["detail"]["in_recovery"] is False, (name, site)
        subs = site["subscriptions"]
        assert len(subs) == 1 and subs[0]["enabled"] and subs[0]["worker"], (name, site)
    backends = status["load_balancer"]["backends"]
    assert {s: backends[f"{s}-first"]["serving"] for s in FRONTENDS} == {
        "site-a": "site-a", "site-b": "site-b"}, backends


def write_through(client: httpx.Client, site: str, seq: int, broken: list[float]) -> str:
    """One marker through HAProxy's frontend for this site's clients; which site took it. A
    connection HAProxy shut down (on-marked-down shutdown-sessions: the kept-alive client
    connection still bound to the site it took out) is what a client sees then: noted in
    `broken`, and the client connects again, once."""
    payload = {"run_id": "test-52/probe", "seq": seq,
               "sent_at": datetime.now().astimezone().isoformat()}
    try:
        reply = client.post(f"{FRONTENDS[site]}/dr/heartbeat", json=payload)
    except httpx.RemoteProtocolError:
        broken.append(time.monotonic())
        reply = client.post(f"{FRONTENDS[site]}/dr/heartbeat", json=payload)
    assert reply.status_code == 200 and reply.json()["seq"] == seq, reply.text
    return str(reply.json()["server"])


def heartbeats(results: Path, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (results / run_id / "heartbeat.jsonl").read_text().splitlines() if line.strip()]


def test_site_loss_through_haproxy(tmp_path: Path) -> None:
    """Site A lost whole (PostgreSQL and its API): HAProxy's checks take it out and send its
    clients to site B by themselves; site B's clients do not notice; the lab is back as it was
    (HAProxy preferring site A for its clients again)."""
    assert_steady()
    results = tmp_path / "results"
    started = time.monotonic()
    code, result, stderr = run_json(DRILL, results)
    took = time.monotonic() - started
    assert code == 0, stderr
    assert result["outcome"] == "passed", result.get("message")
    a, b = result["populations"]["site-a"], result["populations"]["site-b"]
    events = timeline_offsets(result)
    marked_down = events["load balancer marked site-a down"]
    first_ack = events["site-a: first client write acknowledged"]
    # A's clients: moved by HAProxy once its checks failed `fall` times (inter apart), no sooner
    assert (CHECK_FALL - 1) * CHECK_INTER - 0.1 <= marked_down <= CHECK_FALL * CHECK_INTER + 1.0
    assert marked_down - 0.05 <= first_ack <= marked_down + 1.0, events
    assert abs(a["recovery_time"] - first_ack) < 0.01 and a["recovery_time"] < 3, a
    assert a["data_loss_window"] is not None and a["data_loss_window"] < 1.0, a
    after = [h for h in heartbeats(results, result["run_id"])
             if h["population"] == "site-a" and h["acked"]
             and datetime.fromisoformat(h["ended_at"]).timestamp()
             > datetime.fromisoformat(a["fault_at"]).timestamp() + first_ack]
    assert after and {h["server"] for h in after} == {"b"}  # served by site B's API
    # B's clients: their own site never left
    assert b["lost_writes"] == 0 and b["write_outage"] < 0.5, b
    assert all(v["status"] == "met" for v in result["verdicts"]), result["verdicts"]
    converge = next(p for p in result["phases"] if p["phase"] == "converge")
    assert converge["report"]["probes"][0]["met"]
    assert result["steady_state_restored"] is True
    assert_steady()  # site A rebuilt, replication both ways, A's clients back on A
    assert_no_secret(results, PASSWORD)
    print(f"\ndrill {took:.1f} s; site-a: recovery {a['recovery_time']:.3f} s through HAProxy "
          f"(marked down at +{marked_down:.3f} s; check inter {CHECK_INTER} s x fall "
          f"{CHECK_FALL} = {CHECK_INTER * CHECK_FALL:.1f} s), write outage "
          f"{a['write_outage']:.3f} s, lost writes {a['lost_writes']}; site-b: write outage "
          f"{b['write_outage']:.3f} s, lost writes {b['lost_writes']}")


@pytest.fixture
def override() -> Iterator[Path]:
    path = LAB / "site-a" / "api" / "health-override"
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("status", ["no_data", "degraded"])
def test_a_site_whose_health_is_not_ok_is_taken_out(override: Path, status: str) -> None:
    """Site A's API says `no_data` (it cannot tell) or `degraded`: HAProxy takes site A out of
    its clients' backend; they are served by site B, and site A's clients are sent back once
    it says ok again."""
    assert_steady()
    broken: list[float] = []
    with httpx.Client(timeout=2, trust_env=False) as client:
        assert write_through(client, "site-a", 1, broken) == "a"
        override.write_text(status + "\n")
        said = time.monotonic()
        deadline = said + 5
        seq = 2
        while (server := write_through(client, "site-a", seq, broken)) == "a":
            assert time.monotonic() < deadline, f"site A still serves its clients with {status}"
            seq += 1
            time.sleep(0.05)
        out_after = time.monotonic() - said
        assert server == "b"
        assert serving()["site-a"] == "site-b"
        health = client.get(f"{FRONTENDS['site-a']}/health")  # answered by site B
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert write_through(client, "site-b", 1, broken) == "b"  # B's clients never left
        override.unlink()
        deadline = time.monotonic() + 5
        while write_through(client, "site-a", seq, broken) != "a":
            assert time.monotonic() < deadline, "site A did not come back for its clients"
            seq += 1
            time.sleep(0.05)
    assert out_after <= CHECK_INTER * CHECK_FALL + 1.0
    assert len(broken) <= 2  # at most the connection bound to A, each way
    print(f"\n{status}: site A out of its clients' backend after {out_after:.2f} s; "
          f"connections shut down by HAProxy: {len(broken)}")
    assert_steady()


def test_down_leaves_nothing() -> None:
    # no postgres, API or haproxy left
    print(f"\nlab down {TOPOLOGY}: {take_lab_down(TOPOLOGY, LAB):.1f} s")
    for url in FRONTENDS.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=1, trust_env=False)
