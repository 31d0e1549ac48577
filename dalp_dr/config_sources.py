"""Where each setting comes from, lowest precedence first: its default, the system file
``/etc/dalp-dr/config.yaml``, the user's ``$XDG_CONFIG_HOME/dalp-dr/config.yaml`` (default
``~/.config``), a ``DALP_DR_*`` environment variable, a command-line flag. Files are read
with pydantic-settings' YAML source (made strict); ``dalp_dr.config`` is the only user.

A config file is a YAML mapping whose keys are the variables' names without ``DALP_DR_``, in
lower case (``results``, ``store``, ``lock_ttl``, ``webhook_url``...); a list is accepted
where the variable takes several values. A key no variable has is refused naming the file
and the key (with the nearest known key). ``DALP_DR_SYSTEM_CONFIG`` names another system
file (tests, or a host that keeps its configuration elsewhere).
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dalp_dr.errors import ConfigError

PREFIX = "DALP_DR_"
SYSTEM_FILE = Path("/etc/dalp-dr/config.yaml")
SYSTEM_FILE_VARIABLE = f"{PREFIX}SYSTEM_CONFIG"

LIST_SEPARATORS = {"allowed_dirs": os.pathsep, "webhook_url": ",", "slack_webhook_url": ","}
"""keys whose value is a list (joined as their variable is written)"""


KEYS: tuple[str, ...] = (
    "results", "store", "project", "allowed_dirs", "lock_ttl", "keys", "key_passphrase",
    "witness", "witness_retain_days", "witness_lock_mode", "evidence", "s3_endpoint",
    "group_access", "operator", "metrics_textfile", "webhook_url", "slack_webhook_url",
    "debug")
"""every key a file can set: a ``DALP_DR_*`` variable's name without the prefix, lower case
(all of them but DALP_DR_SYSTEM_CONFIG)"""


@functools.cache
def _yaml_source() -> type[Any]:
    """pydantic-settings' YAML source over the settings model, made strict (imported when a
    config file exists: pydantic-settings costs every command's start-up otherwise)."""
    from pydantic import create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict, YamlConfigSettingsSource

    class Base(BaseSettings):
        model_config = SettingsConfigDict(extra="forbid", frozen=True)

    raw = create_model("Raw", __base__=Base,
                       **{key: (str | None, None) for key in KEYS})  # type: ignore[call-overload]

    class CheckedYaml(YamlConfigSettingsSource):
        """A file that is not a mapping of known keys to scalars (or lists, where a list is
        taken) is refused naming the file and the key."""

        def __init__(self, path: Path) -> None:
            super().__init__(raw, yaml_file=path)

        def _read_file(self, file_path: Any) -> dict[str, Any]:
            return _checked(str(file_path), lambda: super(CheckedYaml, self)._read_file(
                file_path))

    return CheckedYaml


class Source(StrEnum):
    DEFAULT = "default"
    SYSTEM_FILE = "system file"
    USER_FILE = "user file"
    ENV = "env"
    FLAG = "flag"


class Origin(BaseModel, frozen=True):
    source: Source
    where: str | None = None
    """the file, the variable or the flag"""

    def __str__(self) -> str:
        return f"{self.source} {self.where}" if self.where else str(self.source)


class Value(BaseModel, frozen=True):
    text: str
    origin: Origin


def key_of(variable: str) -> str:
    """``DALP_DR_LOCK_TTL`` -> ``lock_ttl``."""
    return variable.removeprefix(PREFIX).lower()


def system_file() -> Path:
    return Path(os.environ.get(SYSTEM_FILE_VARIABLE) or SYSTEM_FILE)


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dalp-dr" / "config.yaml"


def _checked(where: str, read: Callable[[], Any]) -> dict[str, Any]:
    import yaml

    try:
        data = read()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        tab = " (a tab: YAML indents with spaces)" if "\t" in str(exc) \
            or "'\\t'" in str(exc) else ""
        raise ConfigError(f"not valid YAML{line}: {getattr(exc, 'problem', exc)}{tab}",
                          source=where, hint="key: value lines, e.g. results: "
                                             "/var/lib/dalp-dr/results") from None
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", source=where) from None
    if not isinstance(data, dict):
        raise ConfigError("is not a mapping of settings", source=where,
                          hint="key: value lines, e.g. results: /var/lib/dalp-dr/results")
    return {str(key): _text(where, str(key), value) for key, value in data.items()}


def _text(where: str, key: str, value: Any) -> str | None:
    if key not in KEYS:
        near = difflib.get_close_matches(key, KEYS, n=1)
        raise ConfigError(f"unknown key '{key}'", source=where, field=key,
                          hint=f"did you mean '{near[0]}'?" if near
                          else "known keys: " + ", ".join(KEYS))
    if value is None:
        return None
    if isinstance(value, list) and key in LIST_SEPARATORS:
        if not all(isinstance(v, str | int | float) for v in value):
            raise ConfigError("a list of plain values only", source=where, field=key)
        return LIST_SEPARATORS[key].join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"is a {type(value).__name__}, not a plain value", source=where,
                      field=key, hint="a string or a number"
                      + (" (or a list of them)" if key in LIST_SEPARATORS else ""))


_FILES: dict[tuple[str, int, int], dict[str, str]] = {}
"""files read, by (path, mtime, size): a process reads each version once"""


def read_file(path: Path) -> dict[str, str]:
    """A config file's settings (nothing when it does not exist)."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if cache_key not in _FILES:
        values = _yaml_source()(path)()
        _FILES[cache_key] = {k: v for k, v in values.items() if v is not None}
    return _FILES[cache_key]


def read_environment() -> dict[str, str]:
    """The ``DALP_DR_*`` variables of the settings that are set (and not empty)."""
    return {key: value for key in KEYS
            if (value := os.environ.get(PREFIX + key.upper(), ""))}


def layers(flags: dict[str, tuple[str, str]] | None = None) -> dict[str, Value]:
    """Every key set anywhere with the value that wins and where it came from. ``flags``:
    key -> (flag name, value) for the flags given on the command line."""
    found: dict[str, Value] = {}
    system, user = system_file(), user_file()
    for origin, values in (
            (Origin(source=Source.SYSTEM_FILE, where=str(system)), read_file(system)),
            (Origin(source=Source.USER_FILE, where=str(user)), read_file(user))):
        for key, text in values.items():
            found[key] = Value(text=text, origin=origin)
    for key, text in read_environment().items():
        found[key] = Value(text=text, origin=Origin(source=Source.ENV,
                                                    where=f"{PREFIX}{key.upper()}"))
    for key, (flag, text) in (flags or {}).items():
        found[key] = Value(text=text, origin=Origin(source=Source.FLAG, where=flag))
    return found
