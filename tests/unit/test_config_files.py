"""Config files: the system file, then the user's, then DALP_DR_* variables, then flags;
unknown keys refused naming file and key; ``config show`` says where each value came from,
secrets masked; the root help lists every variable; shell completion with run ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.shell_completion import ShellComplete

from dalp_dr.commands import cli, main
from dalp_dr.config import VARIABLES, EnvVar, load_settings
from dalp_dr.config_sources import KEYS, key_of
from dalp_dr.errors import ConfigError
from tests.factories import fill_history


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(system file, user file) under tmp_path, neither written yet; no DALP_DR_* set."""
    for variable in EnvVar:
        monkeypatch.delenv(variable.value, raising=False)
    system = tmp_path / "etc" / "config.yaml"
    monkeypatch.setenv(EnvVar.SYSTEM_CONFIG.value, str(system))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "dalp-dr" / "config.yaml"
    for path in (system, user):
        path.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return system, user


def _show(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert main([*flags, "config", "show", "-o", "json"]) == 0
    return {row["key"]: row for row in json.loads(capsys.readouterr().out)}


def test_every_variable_but_the_system_file_is_a_file_key() -> None:
    assert set(KEYS) == {key_of(v.value) for v in EnvVar if v is not EnvVar.SYSTEM_CONFIG}


def test_each_layer_overrides_the_one_before(files: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    system, user = files
    system.write_text("results: /sys/results\nlock_ttl: 2m\nstore: sqlite:////sys/h.db\n"
                      "operator: sys\n")
    user.write_text("results: /user/results\nstore: sqlite:////user/h.db\n"
                    "webhook_url: [https://a.example/T/secret, https://b.example/x]\n")
    monkeypatch.setenv(EnvVar.STORE.value, "sqlite:////env/h.db")
    settings = load_settings()
    assert settings.results_dir == Path("/user/results") and settings.lock_ttl == 120.0
    assert settings.store_url == "sqlite:////env/h.db" and settings.operator == "sys"
    assert settings.webhook_urls == ("https://a.example/T/secret", "https://b.example/x")
    assert load_settings(results_dir=str(tmp_path / "flag")).results_dir == tmp_path / "flag"
    shown = _show(capsys, "--results-dir", str(tmp_path / "flag"))
    assert (shown["results"]["source"], shown["results"]["origin"]) == ("flag",
                                                                        "--results-dir")
    assert (shown["store"]["source"], shown["store"]["origin"]) == ("env", "DALP_DR_STORE")
    assert (shown["lock_ttl"]["source"], shown["lock_ttl"]["origin"]) == ("system file",
                                                                          str(system))
    assert (shown["webhook_url"]["source"], shown["webhook_url"]["origin"]) == (
        "user file", str(user))
    assert shown["webhook_url"]["value"] == "********"
    assert shown["debug"]["source"] == "default" and shown["debug"]["origin"] is None
    assert shown["project"]["value"] == str(load_settings().project_dir)


def test_secrets_are_masked(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _system, user = files
    user.write_text("key_passphrase: hunter2hunter2\n")
    monkeypatch.setenv(EnvVar.STORE.value, "postgresql://dr:s3cretpw@db.example/dr")
    monkeypatch.setenv(EnvVar.SLACK_WEBHOOK_URL.value, "https://hooks.example/T/B/tok")
    shown = _show(capsys)
    assert shown["key_passphrase"]["value"] == "********"
    assert shown["slack_webhook_url"]["value"] == "********"
    assert shown["store"]["value"] == "postgresql://dr:********@db.example/dr"
    assert main(["config", "show"]) == 0
    text = capsys.readouterr().out
    assert "hunter2" not in text and "s3cretpw" not in text and "tok" not in text


@pytest.mark.parametrize(("text", "field", "words"), [
    ("result: /x\n", "result", "did you mean 'results'?"),
    ("lock_tll: 5m\n", "lock_tll", "did you mean 'lock_ttl'?"),
    ("zzz: 1\n", "zzz", "known keys: results"),
    ("witness: {bucket: b}\n", "witness", "not a plain value"),
    ("- results\n", None, "not a mapping"),
    ("results:\n\t- x\n", None, "a tab"),
    ("lock_ttl: soon\n", "lock_ttl", "duration"),
])
def test_a_bad_file_is_refused_naming_file_and_key(files: tuple[Path, Path], text: str,
                                                   field: str | None, words: str,
                                                   capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    system, _user = files
    system.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.source == str(system) and info.value.field == field
    assert main(["config", "show", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["file"] == str(system) and words in f"{error['message']} {error['hint']}"


def test_the_root_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(v.name.value in text for v in VARIABLES)
    assert "/etc/dalp-dr/config.yaml" in text and "dalp-dr completion bash" in text


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"),
                                               ("zsh", "#compdef dalp-dr"),
                                               ("fish", "complete --no-files --command")])
def test_completion_prints_the_script(shell: str, marker: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script and "_DALP_DR_COMPLETE" in script
    assert main(["completion", shell, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["script"] == script


def test_run_ids_complete_from_the_history(tmp_path: Path) -> None:
    url = fill_history(tmp_path)
    complete = ShellComplete(cli, {}, "dalp-dr", "_DALP_DR_COMPLETE")
    for command in (["history", "show"], ["drill", "recover"]):
        items = complete.get_completions(["--store", url, *command], "202604")
        assert [(i.value, i.help) for i in items] == [
            ("20260401T030000Z-bbbbbb", "hot-warm-failover missed 2026-04-01 03:00 UTC")]
    assert len(complete.get_completions(["--store", url, "history", "show"], "")) == 4
    nowhere = tmp_path / "nowhere"
    assert complete.get_completions(["--results-dir", str(nowhere), "history", "show"],
                                    "") == []
    assert not nowhere.exists()  # completing created no store
