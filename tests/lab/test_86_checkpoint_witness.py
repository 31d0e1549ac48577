"""Signed checkpoints witnessed in S3 under Object Lock, on a moto S3 server (the lab's
stand-in for AWS S3; the same boto3 calls go to AWS). An attacker who rewrites the whole
history store and the local checkpoint log, without the signing key, is still caught by the
witness, which they can neither rewrite nor delete."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from dalp_dr.checkpoints import LOG_NAME
from dalp_dr.results import Outcome
from tests.factories import record_configured, reseal_from, sealed_runs
from tests.lab.helpers import dalp_in

pytestmark = pytest.mark.xdist_group("s3-object-lock")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return dalp_in(env, *args)


def test_the_witness_catches_a_rewrite_of_store_and_local_log(s3: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    settings = {"DALP_DR_RESULTS": str(tmp_path / "results"),
                "DALP_DR_KEYS": str(tmp_path / "keys"),
                "DALP_DR_WITNESS": "s3://dr-witness/dalp/history",
                "DALP_DR_WITNESS_RETAIN_DAYS": "3", "DALP_DR_S3_ENDPOINT": s3,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    env = dict(os.environ)
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="dr-witness", ObjectLockEnabledForBucket=True)
    assert cli(env, "keys", "init").returncode == 0

    before = datetime.now(UTC)
    record_configured(sealed_runs(tmp_path))  # signed into the log and the witness
    listed = client.list_objects_v2(Bucket="dr-witness", Prefix="dalp/history/")
    names = sorted(o["Key"] for o in listed["Contents"])
    assert [n.split("/")[-1][:12] for n in names] == [f"{i:012d}" for i in (1, 2, 3)]
    head = client.head_object(Bucket="dr-witness", Key=names[1])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert before + timedelta(days=2) < head["ObjectLockRetainUntilDate"] < \
        before + timedelta(days=4)
    with pytest.raises(ClientError):  # retention holds: the witness cannot be removed
        client.delete_object(Bucket="dr-witness", Key=names[1], VersionId=head["VersionId"])
    verified = cli(env, "history", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "3 sealed records" in verified.stdout
    assert "6 signed checkpoint(s) agree" in verified.stdout  # 3 local + 3 witnessed

    # the attacker: the missed run becomes a pass, every later entry is re-sealed, and the
    # local checkpoint log (which they cannot forge) is deleted
    reseal_from(tmp_path / "results" / "history.sqlite", "20260401T030000Z-bbbbbb",
                {"outcome": Outcome.PASSED.value})
    (tmp_path / "results" / LOG_NAME).unlink()
    rewritten = cli(env, "history", "verify")
    assert rewritten.returncode == 1
    assert "history TAMPERED" in rewritten.stderr
    assert "contradicts signed checkpoint #2 in s3://dr-witness/dalp/history" in \
        rewritten.stderr
    refused = cli(env, "export", "--format", "json")
    assert refused.returncode == 1 and "not exported" in refused.stderr

    # a plain delete (no version) is allowed under retention and hides the object from
    # listings with a delete marker: read by versions, the witness still has it, and names
    # the marker
    client.delete_object(Bucket="dr-witness", Key=names[0])
    hidden = cli(env, "history", "verify")
    assert hidden.returncode == 1
    assert "deleted (a delete marker hides a witnessed checkpoint)" in hidden.stderr
    assert "contradicts signed checkpoint #2 in s3://dr-witness/dalp/history" in hidden.stderr

    # an unreachable witness cannot prove anything: verification fails closed
    env_down = dict(env, DALP_DR_S3_ENDPOINT="http://127.0.0.1:9")
    down = cli(env_down, "history", "verify")
    assert down.returncode == 1 and "checkpoints unreadable" in down.stderr
