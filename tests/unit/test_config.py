"""Settings at the edge: every DALP_DR_* variable is read in dalp_dr.config alone, is
documented there once, and reaches the library as a value."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dalp_dr import config
from dalp_dr.config import VARIABLES, EnvVar, load_settings
from dalp_dr.errors import ConfigError
from dalp_dr.notify import targets_from_settings
from dalp_dr.provenance import OperatorSource, operator_and_source
from dalp_dr.spec import allowed_roots

PACKAGE = Path(config.__file__).parent
READS_ENVIRONMENT = re.compile(r"(os\.environ|getenv\(|envvar=)[^\n]*DALP_DR_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in EnvVar:
        monkeypatch.delenv(variable.value, raising=False)


def test_every_variable_is_documented_once() -> None:
    names = [row.name for row in VARIABLES]
    assert sorted(names) == sorted(EnvVar) and len(names) == len(set(names))
    assert all(row.description.strip() for row in VARIABLES)


def test_no_module_but_config_reads_a_dalp_dr_variable() -> None:
    # config.py reads them by EnvVar alone; nothing else names one next to os.environ
    readers = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
               if READS_ENVIRONMENT.search(path.read_text(encoding="utf-8"))}
    assert readers == set(), readers


def test_settings_carry_every_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = [tmp_path / "a", tmp_path / "b"]
    for name, value in ((EnvVar.RESULTS, tmp_path / "res"), (EnvVar.PROJECT, tmp_path),
                        (EnvVar.ALLOWED_DIRS, os.pathsep.join(map(str, extra)) + os.pathsep),
                        (EnvVar.LOCK_TTL, "2m"), (EnvVar.KEYS, tmp_path / "keys"),
                        (EnvVar.S3_ENDPOINT, "http://127.0.0.1:9"),
                        (EnvVar.OPERATOR, "  alice "), (EnvVar.GROUP_ACCESS, "yes"),
                        (EnvVar.METRICS_TEXTFILE, tmp_path / "m.prom"),
                        (EnvVar.WEBHOOK_URL, "https://a.example/x, ,https://b.example/y"),
                        (EnvVar.SLACK_WEBHOOK_URL, "https://hooks.example/T/B/s"),
                        (EnvVar.DEBUG, "1"), (EnvVar.WITNESS, "s3://bucket/pre/")):
        monkeypatch.setenv(name.value, str(value))
    settings = load_settings()
    assert settings.results_dir == (tmp_path / "res").resolve()
    assert settings.store_url == f"sqlite:///{(tmp_path / 'res').resolve()}/history.sqlite"
    assert settings.project_dir == tmp_path.resolve() and settings.lock_ttl == 120.0
    assert settings.allowed_dirs == tuple(p.resolve() for p in extra)
    assert settings.keys_dir == tmp_path / "keys"
    assert settings.s3_endpoint == "http://127.0.0.1:9" and settings.operator == "alice"
    assert settings.group_access and settings.debug
    assert settings.metrics_textfile == tmp_path / "m.prom"
    assert settings.webhook_urls == ("https://a.example/x", "https://b.example/y")
    assert settings.slack_webhook_urls == ("https://hooks.example/T/B/s",)
    assert settings.witness is not None and settings.witness.prefix == "pre"
    assert settings.witness.endpoint_url == "http://127.0.0.1:9"
    assert [(t.url, t.kind) for t in targets_from_settings(settings)] == [
        ("https://a.example/x", "json"), ("https://b.example/y", "json"),
        ("https://hooks.example/T/B/s", "slack")]


def test_defaults_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a project: the results directory is the project's
    settings = load_settings()
    assert settings.results_dir == settings.project_dir / "results" != tmp_path / "results"
    assert settings.lock_ttl == 60.0 and settings.witness is None
    assert settings.metrics_textfile is None and settings.operator is None
    assert not settings.debug and not settings.group_access and settings.allowed_dirs == ()
    assert settings.webhook_urls == () == settings.slack_webhook_urls


@pytest.mark.parametrize("value", ["", "0", "false", "No"])
def test_debug_is_off_for_its_off_words(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EnvVar.DEBUG.value, value)
    assert not config.debugging()


@pytest.mark.parametrize(("value", "words"), [("soon", "duration"), ("1s", "at least 3s")])
def test_a_bad_lock_ttl_names_its_variable(value: str, words: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EnvVar.LOCK_TTL.value, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.source == "DALP_DR_LOCK_TTL" and words in str(info.value)


def test_allowed_roots_take_the_directories_they_are_given(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv(EnvVar.ALLOWED_DIRS.value, "/elsewhere")
    roots = allowed_roots(tmp_path / "drills", project=tmp_path, extra=[tmp_path / "x"])
    assert roots == [tmp_path / "drills", tmp_path.resolve(), (tmp_path / "x").resolve()]
    assert Path("/elsewhere") in allowed_roots(tmp_path, project=tmp_path)


def test_the_operator_variable_comes_before_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "sudoer")
    monkeypatch.setenv(EnvVar.OPERATOR.value, " ")
    assert operator_and_source(None) == ("sudoer", OperatorSource.SUDO)
    monkeypatch.setenv(EnvVar.OPERATOR.value, "carol")
    assert operator_and_source(None) == ("carol", OperatorSource.ENV)


def test_results_default_to_the_project_else_the_users_data_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DALP_DR_RESULTS", raising=False)
    monkeypatch.delenv("DALP_DR_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    assert load_settings(project_dir=str(project)).results_dir == project / "results"
    bare = tmp_path / "not-a-project"
    bare.mkdir()
    assert load_settings(project_dir=str(bare)).results_dir == \
        tmp_path / "data" / "dalp-dr" / "results"
