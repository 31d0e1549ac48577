"""A run's evidence copied to S3 (DALP_DR_EVIDENCE), against moto's S3 server on 127.0.0.1
(S3 itself is never faked): every file with its SHA-256 checksum, the manifest last; a
bucket that cannot be used refuses the drill before anything starts; a copy that fails
after the run is said and changes neither the outcome nor the local evidence."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from dalp_dr import object_store
from dalp_dr.config import Evidence
from dalp_dr.errors import TargetUnreachable
from dalp_dr.evidence_store import MANIFEST, EvidenceStore, evidence_files
from dalp_dr.results import Outcome
from dalp_dr.spec import PhaseName
from tests.fakes import FakePlaybookRunner
from tests.unit.engine.harness import ENVIRONMENT, EngineHarness, failover
from tests.unit.engine.run_requests import Said, run

PREFIX = "dr/evidence"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the module; its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client of the server (what the code under test uses too: credentials from the
    standard chain, here the environment's)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "evidence-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "evidence-test")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return object_store.client({"endpoint_url": s3_url, "region": "us-east-1"})


@pytest.fixture
def target(s3: Any, s3_url: str) -> Evidence:
    """A fresh bucket of the server, as DALP_DR_EVIDENCE would give it."""
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return Evidence(bucket=bucket, prefix=PREFIX, endpoint_url=s3_url, region="us-east-1")


def keys_under(s3: Any, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_every_evidence_file_is_copied_with_its_checksum_and_a_manifest(
        harness: EngineHarness, s3: Any, target: Evidence) -> None:
    said = Said()
    report = run(harness, said, evidence=target)
    result = report.result
    assert report.recorded and result.outcome is Outcome.PASSED, result.message
    run_prefix = f"{PREFIX}/{ENVIRONMENT}/{result.run_id}/"
    assert report.evidence_url == f"s3://{target.bucket}/{run_prefix}"
    assert report.evidence_problem is None and said.warnings == []
    local = dict(evidence_files(Path(result.evidence_dir)))
    assert {"result.json", "summary.txt", "spec.json"} <= set(local)
    assert any(name.startswith("journal/") for name in local)
    assert keys_under(s3, target.bucket, PREFIX) == {
        run_prefix + name for name in [*local, MANIFEST]}
    for name, path in local.items():
        data = path.read_bytes()
        head = s3.head_object(Bucket=target.bucket, Key=run_prefix + name,
                              ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == b64_sha256(data), name
        body = s3.get_object(Bucket=target.bucket, Key=run_prefix + name)["Body"].read()
        assert body == data, name
    manifest = json.loads(s3.get_object(Bucket=target.bucket,
                                        Key=run_prefix + MANIFEST)["Body"].read())
    assert manifest["run_id"] == result.run_id and manifest["environment"] == ENVIRONMENT
    assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        name: (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        for name, path in local.items()}
    assert said.has(f"copied to s3://{target.bucket}/{run_prefix}")


def test_the_manifest_is_written_last(tmp_path: Path, s3: Any, target: Evidence) -> None:
    """A reader takes the manifest for "complete": no object may follow it. The order is
    heard on boto3's own event hook (the requests themselves go to the server)."""
    evidence = tmp_path / "run"
    (evidence / "journal").mkdir(parents=True)
    for i in range(20):
        (evidence / "journal" / f"{i:06d}.json").write_text(json.dumps({"seq": i}))
    (evidence / "result.json").write_text("{}")
    (evidence / "outside").symlink_to(tmp_path)  # a link is neither followed nor copied
    sent: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject",
                            lambda params, **_: sent.append(params["Key"]))
    shipped = EvidenceStore(target, client=s3).ship(evidence, "env-a", "run-1")
    assert len(sent) == 22 and sent[-1] == f"{PREFIX}/env-a/run-1/{MANIFEST}"
    assert MANIFEST not in {s.rsplit("/", 1)[-1] for s in sent[:-1]}
    assert shipped.url == f"s3://{target.bucket}/{PREFIX}/env-a/run-1/"
    assert len(shipped.files) == 21 and not any("outside" in f.path for f in shipped.files)


def test_a_missing_bucket_refuses_the_drill_before_anything_starts(
        harness: EngineHarness, s3: Any, target: Evidence) -> None:
    said = Said()
    runner = FakePlaybookRunner(failover(harness.endpoint))
    missing = target.model_copy(update={"bucket": target.bucket + "-missing"})
    with pytest.raises(TargetUnreachable) as refused:
        run(harness, said, evidence=missing, runner=runner)
    assert refused.value.field == "DALP_DR_EVIDENCE"
    assert missing.bucket in str(refused.value) and "not started" in str(refused.value)
    assert refused.value.hint and "unset DALP_DR_EVIDENCE" in refused.value.hint
    assert runner.calls == []  # no playbook ran: nothing injected
    assert harness.store.list_runs() == []  # nothing recorded
    assert not harness.results.exists() or not any(
        p.is_dir() for p in harness.results.iterdir())  # no evidence directory
    assert keys_under(s3, target.bucket, "") == set()


def test_a_copy_that_fails_is_said_and_the_local_evidence_and_outcome_stay(
        harness: EngineHarness, s3: Any, target: Evidence) -> None:
    """The bucket answers at preflight, then is gone by the time the run ended."""
    said = Said()
    report = run(harness, said, evidence=target,
                 at={PhaseName.VERIFY: lambda: s3.delete_bucket(Bucket=target.bucket)})
    result = report.result
    assert report.recorded and result.outcome is Outcome.PASSED, result.message
    assert harness.store.get(result.run_id).outcome is Outcome.PASSED
    assert report.evidence_url is None
    assert report.evidence_problem is not None and "NoSuchBucket" in report.evidence_problem
    assert [w for w in said.warnings if "NOT copied" in w and result.evidence_dir in w]
    evidence = Path(result.evidence_dir)
    local = dict(evidence_files(evidence))
    assert {"result.json", "summary.txt", "spec.json"} <= set(local)
    assert json.loads((evidence / "result.json").read_text())["outcome"] == "passed"
