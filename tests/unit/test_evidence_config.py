"""DALP_DR_EVIDENCE: where runs' evidence is copied. Read in dalp_dr.config alone, shown by
``config show``, a value that is not an s3:// URL refused naming where it was set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dalp_dr.commands import main
from dalp_dr.config import EnvVar, load_settings
from dalp_dr.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in EnvVar:
        monkeypatch.delenv(variable.value, raising=False)
    monkeypatch.setenv(EnvVar.SYSTEM_CONFIG.value, str(tmp_path / "etc" / "config.yaml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(EnvVar.RESULTS.value, str(tmp_path / "results"))


def test_unset_keeps_evidence_local() -> None:
    assert load_settings().evidence is None


def test_an_s3_url_names_bucket_prefix_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EnvVar.EVIDENCE.value, "s3://dr-evidence/site-a/drills/")
    monkeypatch.setenv(EnvVar.S3_ENDPOINT.value, "http://127.0.0.1:9")
    evidence = load_settings().evidence
    assert evidence is not None
    assert (evidence.bucket, evidence.prefix) == ("dr-evidence", "site-a/drills")
    assert evidence.endpoint_url == "http://127.0.0.1:9"
    assert evidence.url == "s3://dr-evidence/site-a/drills"


@pytest.mark.parametrize("url", ["https://dr-evidence/x", "s3://", "s3:///prefix",
                                 "dr-evidence/prefix", "s3://dr evidence/x"])
def test_a_bad_url_is_refused_naming_the_variable_and_the_fix(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EnvVar.EVIDENCE.value, url)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "DALP_DR_EVIDENCE" in str(refused.value)
    assert refused.value.hint is not None and "s3://bucket/prefix" in refused.value.hint


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "ftp://s3.internal", "http://",
                                      "https:// s3.internal"])
def test_an_s3_endpoint_that_is_no_url_is_refused_before_a_drill_starts(
        endpoint: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """(botocore would raise a bare ValueError when the client is built: exit 1, unexpected)"""
    monkeypatch.setenv(EnvVar.EVIDENCE.value, "s3://dr-evidence/site-a")
    monkeypatch.setenv(EnvVar.S3_ENDPOINT.value, endpoint)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "DALP_DR_S3_ENDPOINT" in str(refused.value) and refused.value.hint
    drill = Path(__file__).resolve().parents[2] / "drills" / "hot-warm-failover.yaml"
    assert main(["drill", "run", str(drill)]) == 2
    assert "DALP_DR_S3_ENDPOINT" in capsys.readouterr().err


def test_a_bad_url_in_a_file_names_the_file_and_key(tmp_path: Path) -> None:
    user = tmp_path / "xdg" / "dalp-dr" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("evidence: http://dr-evidence/x\n")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert refused.value.source == str(user) and refused.value.field == "evidence"


def test_config_show_says_where_evidence_goes(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(EnvVar.EVIDENCE.value, "s3://dr-evidence/site-a")
    assert main(["config", "show", "-o", "json"]) == 0
    rows = {row["key"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["evidence"]["value"] == "s3://dr-evidence/site-a"
    assert rows["evidence"]["origin"] == "DALP_DR_EVIDENCE"


@pytest.mark.parametrize(("environment", "segment"), [
    ("lab-eu-1", "lab-eu-1"), ("lab.x", "lab.x"), ("../x", "..%2Fx"), ("a/b", "a%2Fb"),
    ("..", "%2E%2E"), (".", "%2E"), ("", "%00"), ("prod <!channel>", "prod%20%3C%21channel%3E")])
def test_an_environment_is_one_segment_of_the_evidence_key(environment: str,
                                                           segment: str) -> None:
    """an environment name is free text: it never adds, removes or climbs a key segment"""
    from dalp_dr.evidence_store import key_part

    assert key_part(environment) == segment
