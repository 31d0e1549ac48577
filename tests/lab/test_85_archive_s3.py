"""Export bundles archived to S3 under Object Lock, on a moto S3 server (the lab's stand-in
for AWS S3; the same boto3 calls go to AWS). moto enforces retention: a locked version
cannot be deleted."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from dalp_dr.history import open_store
from dalp_dr.results import Outcome
from tests.factories import make_run
from tests.lab.helpers import dalp_in

pytestmark = pytest.mark.xdist_group("s3-object-lock")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return dalp_in(env, *args)


def test_a_bundle_is_archived_with_retention_and_refused_without_lock(s3: str,
                                                                      tmp_path: Path) -> None:
    env = dict(os.environ, DALP_DR_RESULTS=str(tmp_path / "results"), DALP_DR_S3_ENDPOINT=s3,
               DALP_DR_KEYS=str(tmp_path / "keys"), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="evidence-locked", ObjectLockEnabledForBucket=True)
    client.create_bucket(Bucket="evidence-plain")
    store = open_store(f"sqlite:///{tmp_path / 'results' / 'history.sqlite'}")
    run = make_run(tmp_path, "20261001T030000Z-s3s3s3", "hot-warm-failover",
                   datetime(2026, 10, 1, 3, tzinfo=UTC), Outcome.PASSED, 1.1)
    store.begin(run.model_copy(update={"outcome": Outcome.RUNNING, "ended_at": None}),
                json.dumps({"name": run.drill}))
    store.finish(run)
    store.close()
    assert cli(env, "keys", "init").returncode == 0
    assert cli(env, "history", "checkpoint", "--sign").returncode == 0  # sealed before the key

    refused = cli(env, "export", "--bundle", str(tmp_path / "a.tar.gz"), "--to-s3",
                  "s3://evidence-plain/dalp", "--retain-days", "30")
    assert refused.returncode == 2, refused.stderr
    assert "does not have Object Lock enabled" in refused.stderr
    assert not (tmp_path / "a.tar.gz").exists()  # refused before anything was written
    assert client.list_objects_v2(Bucket="evidence-plain").get("KeyCount") == 0

    before = datetime.now(UTC)
    done = cli(env, "export", "--bundle", str(tmp_path / "b.tar.gz"), "--to-s3",
               "s3://evidence-locked/dalp/2026", "--lock-mode", "COMPLIANCE",
               "--retain-days", "30")
    assert done.returncode == 0, done.stderr
    assert "COMPLIANCE retention until" in done.stdout
    head = client.head_object(Bucket="evidence-locked", Key="dalp/2026/b.tar.gz")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=29) < until < before + timedelta(days=31)
    body = client.get_object(Bucket="evidence-locked", Key="dalp/2026/b.tar.gz")["Body"].read()
    assert body == (tmp_path / "b.tar.gz").read_bytes()
    with pytest.raises(ClientError):  # retention holds: the version cannot be deleted
        client.delete_object(Bucket="evidence-locked", Key="dalp/2026/b.tar.gz",
                             VersionId=head["VersionId"])
    downloaded = tmp_path / "downloaded.tar.gz"
    downloaded.write_bytes(body)
    # as an auditor would: trusting the signer's public key, handed over out of band
    assert cli(env, "export", "verify", str(downloaded), "--public-key",
               str(tmp_path / "keys" / "signing-key.pub.pem")).returncode == 0

    forced = cli(env, "export", "--bundle", str(tmp_path / "c.tar.gz"), "--to-s3",
                 "s3://evidence-plain/dalp", "--retain-days", "30", "--force-without-lock")
    assert forced.returncode == 0 and "NO retention" in forced.stdout
    for args, message in ((("--to-s3", "s3://evidence-locked", "--retain-days", "1"),
                           "needs a bundle file"),
                          (("--bundle", str(tmp_path / "d.tar.gz"), "--to-s3",
                            "s3://evidence-locked"), "--retain-days"),
                          (("--bundle", str(tmp_path / "e.tar.gz"), "--to-s3", "evidence",
                            "--retain-days", "1"), "not an s3:// URL")):
        bad = cli(env, "export", *args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
