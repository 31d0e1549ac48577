"""What ``dalp-dr config show`` prints: every setting's effective value and where it came
from (default, system file, user file, env VAR, flag), secrets masked."""

from __future__ import annotations

from pydantic import BaseModel

from dalp_dr.config import VARIABLES, EnvVar, Settings
from dalp_dr.config_sources import Origin, Source, key_of, layers
from dalp_dr.redact import MASK, Redactor, secret_name

SECRET_KEYS = frozenset({"key_passphrase", "webhook_url", "slack_webhook_url"})
"""masked whole: a passphrase, and webhook URLs (the URL is the credential)"""

FLAGS = {"results_dir": ("results", "--results-dir"), "store": ("store", "--store"),
         "project_dir": ("project", "--project-dir"), "keys_dir": ("keys", "--keys")}
"""the root group's parameters that are settings: parameter -> (key, flag)"""


class Effective(BaseModel, frozen=True):
    key: str
    variable: EnvVar
    value: str
    source: Source
    origin: str | None
    """the file, variable or flag it came from (None: the default)"""


def _defaults(settings: Settings) -> dict[str, str]:
    """What applies when nothing sets a key: the value in effect where the settings hold
    one, else the documented default."""
    return {"results": str(settings.results_dir), "store": settings.store_url,
            "project": str(settings.project_dir), "keys": str(settings.keys_dir)}


def masked(key: str, text: str) -> str:
    if not text:
        return text
    if key in SECRET_KEYS or secret_name(key):
        return MASK
    return Redactor().text(text)  # a store URL's password


def effective(settings: Settings, flags: dict[str, str | None]) -> list[Effective]:
    """Every documented setting, in the help's order. ``flags``: the root group's
    parameters as given (None: not given)."""
    given = {FLAGS[name][0]: (FLAGS[name][1], value) for name, value in flags.items()
             if name in FLAGS and value is not None}
    found = layers(given)
    defaults = _defaults(settings)
    rows: list[Effective] = []
    for variable in VARIABLES:
        if variable.name is EnvVar.SYSTEM_CONFIG:
            continue
        key = key_of(variable.name.value)
        value = found.get(key)
        origin = value.origin if value is not None else Origin(source=Source.DEFAULT)
        text = value.text if value is not None else defaults.get(key, variable.default)
        rows.append(Effective(key=key, variable=variable.name, value=masked(key, text),
                              source=origin.source, origin=origin.where))
    return rows
