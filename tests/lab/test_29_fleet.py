"""A fleet on one machine: four named hot-warm labs (four environments), two controllers
recording into one PostgreSQL history and shipping evidence to one S3 bucket (moto's
server). Each controller starts a drill on every environment at the same moment: eight
drills, two per environment. The environment lock, held in the shared store, lets no
environment be drilled twice at once (the second waits: --wait-for-lock); every run is
recorded once, sealed in one chain, and its evidence is in S3 as on the controller's disk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.lab.helpers import (
    LAB_PASSWORD,
    LABS,
    ROOT,
    NamedLab,
    assert_no_secret,
    assert_steady_state,
    named_labs_up,
    postgres_server,
)

pytestmark = pytest.mark.xdist_group("fleet")

NAMES = ("fleet-1", "fleet-2", "fleet-3", "fleet-4")
CONTROLLERS = ("controller-a", "controller-b")
STORE_PORT = 55487  # its own (tests/lab/test_60 and test_26 have theirs)
BUCKET = "dalp-dr-evidence"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}


def _dalp(*args: str, env: dict[str, str] | None = None, timeout: float = 600
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dalp_dr", *args], cwd=ROOT,
                          env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def labs() -> Iterator[dict[str, NamedLab]]:
    """The four labs, brought up at once; down after, whatever happened."""
    with named_labs_up(NAMES) as made:
        yield made


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with postgres_server(LABS / "fleet-store", STORE_PORT, ("dalp_history",)) as url:
        yield f"{url}/dalp_history"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_two_controllers_drill_four_environments_at_once(
        labs: dict[str, NamedLab], store: str, s3: str, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    (tmp_path / "drills").mkdir()
    drills = {name: lab.drill(tmp_path / "drills", renamed=True)
              for name, lab in labs.items()}
    envs = {c: dict(os.environ, **AWS, DALP_DR_STORE=store,
                    DALP_DR_RESULTS=str(tmp_path / c / "results"),
                    DALP_DR_KEYS=str(tmp_path / c / "keys"),
                    DALP_DR_EVIDENCE=f"s3://{BUCKET}/fleet", DALP_DR_S3_ENDPOINT=s3,
                    # the named labs' inventories live outside the project
                    DALP_DR_ALLOWED_DIRS=os.pathsep.join(
                        str(Path(lab.made["root"])) for lab in labs.values()))
            for c in CONTROLLERS}
    migrated = _dalp("store", "migrate", env=envs[CONTROLLERS[0]])
    assert migrated.returncode == 0, migrated.stderr

    started = time.monotonic()
    procs = {(c, name): subprocess.Popen(
        [sys.executable, "-m", "dalp_dr", "drill", "run", str(drills[name]), "--json",
         "--wait-for-lock", "10m", "--operator", c], cwd=ROOT, env=envs[c], text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in NAMES for c in CONTROLLERS}
    printed = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, (key, err[-3000:])
        printed[key] = json.loads(out)
    wall = time.monotonic() - started

    # every run passed, on the environment it was aimed at, its evidence copied to S3
    for (controller, name), result in printed.items():
        assert result["outcome"] == "passed", (controller, name, result.get("message"))
        assert result["environment"] == labs[name].made["environment"]
        assert result["operator"] == controller
        assert result["evidence_url"] == (f"s3://{BUCKET}/fleet/{result['environment']}/"
                                          f"{result['run_id']}/")
    run_ids = [r["run_id"] for r in printed.values()]
    assert len(set(run_ids)) == 8

    # recorded once each, in the one store; never two at once on an environment
    listed = _dalp("history", "list", "--limit", "100", "--json", env=envs[CONTROLLERS[1]])
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["run_id"] for r in rows) == sorted(run_ids)
    for name in NAMES:
        runs = sorted((_at(r["started_at"]), _at(r["ended_at"])) for r in printed.values()
                      if r["environment"] == labs[name].made["environment"])
        assert len(runs) == 2
        (_, first_end), (second_start, _) = runs
        assert first_end <= second_start, (name, runs)
    # the environments were drilled side by side, not one after the other: some run on
    # one environment overlapped a run on another
    spans = [(_at(r["started_at"]), _at(r["ended_at"]), r["environment"])
             for r in printed.values()]
    assert any(a[0] < b[1] and b[0] < a[1] and a[2] != b[2]
               for a in spans for b in spans if a is not b)

    # one chain, every run sealed in it (evidence lives on two controllers' disks and in
    # S3: the chain is verified here, the evidence against S3's manifests below)
    verified = _dalp("history", "verify", "--no-evidence", "--json", env=envs[CONTROLLERS[0]])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["intact"] is True and report["records"] == 8, report

    # the evidence in S3 is the evidence on the controller that ran the drill
    for (controller, _), result in printed.items():
        prefix = f"fleet/{result['environment']}/{result['run_id']}/"
        manifest = json.loads(client.get_object(
            Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
        local = Path(result["evidence_dir"])
        assert local.parent == tmp_path / controller / "results"
        files = manifest["files"]
        assert {f["path"] for f in files} >= {"result.json", "spec.json"}
        for entry in files:
            body = client.get_object(Bucket=BUCKET, Key=prefix + entry["path"])["Body"].read()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
            assert (local / entry["path"]).read_bytes() == body
    for name in NAMES:
        assert_steady_state(labs[name].lab)
    assert_no_secret(tmp_path, LAB_PASSWORD)
    print(f"fleet: 8 drills on 4 environments from 2 controllers in {wall:.1f} s")
