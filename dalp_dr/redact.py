"""Keeps secrets out of logs, evidence, history and exports.

A Redactor knows the secret values of a run (inventory passwords, DSN passwords) and also
masks anything that looks like a credential, whether or not it was known:

* URL userinfo: ``scheme://user:pw@host`` and ``scheme://:pw@host`` (up to the last ``@``
  of the address, so a password containing ``@`` is masked whole);
* a value under a secret-looking name (the inventory's ``SECRET_NAME``: ``passw``,
  ``secret``, ``token``, ``private_key``, ``api_key``, ``access_key``) in every form it is
  written: libpq conninfo and query strings (``password=x``), environment
  (``PGPASSWORD=x``), YAML (``password: x``), JSON (``"password": "x"``, also escaped inside
  a JSON string), Python repr (``'password': 'x'``);
* ``Authorization:`` header credentials;
* in structures (``scrub``): every scalar under a secret-looking key.

JSON stays JSON: a number under a secret-named quoted key becomes the string ``"********"``;
``null``/``true``/``false`` hold no secret and are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"

# the names dalp_dr.inventory.SECRET_NAME collects values of, with - or _ in the compounds
_SECRET_WORD = r"(?:passw|secret|token|private[_-]?key|api[_-]?key|access[_-]?key)"
_SECRET_KEY = re.compile(_SECRET_WORD, re.IGNORECASE)
# a whole name that contains one of them; possessive, so text of any length (evidence files
# a target wrote) is scanned in linear time
_KEY = rf"(?=[A-Za-z0-9_.-]*?{_SECRET_WORD})[A-Za-z0-9_.-]++"

_DQ = r'"(?:[^"\\]|\\.)*"'
_SQ = r"'(?:[^'\\]|\\.)*'"
_ESCAPED_DQ = r'\\"(?:(?!\\").)*\\"'  # "..." inside a JSON string: \"...\"
_LITERAL = r"(?:null|true|false|None|True|False)(?![A-Za-z0-9_])"

# scheme://[user]:password@host -- the password runs to the last @ before a space, a quote
# or the next scheme:// (so each address is scanned once: linear time on any text)
_URL_PASSWORD = re.compile(r"(://[^\s:/@\"']*:)((?:(?!://)[^\s\"'])*)(@)")
# "key": value / 'key': value / \"key\": \"value\" (JSON, Python repr, escaped JSON)
_QUOTED_PAIR = re.compile(
    rf"(?P<head>(?P<q>\\?[\"']){_KEY}(?P=q)\s*[:=]\s*)"
    rf"(?P<value>{_ESCAPED_DQ}|{_DQ}|{_SQ}|(?!{_LITERAL})[^\s,}}\]]+)",
    re.IGNORECASE)
# key=value (conninfo, query strings, environment), key: value (YAML, headers)
_BARE_PAIR = re.compile(
    rf"(?P<head>(?<![A-Za-z0-9_.\\-]){_KEY}(?:[ \t]*=[ \t]*|:[ \t]+))"
    rf"(?P<value>{_DQ}|{_SQ}|\S++)",
    re.IGNORECASE)
_AUTHORIZATION = re.compile(
    r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|token|digest|negotiate)\s+)?)([^\s\"',}]+)", re.IGNORECASE)


def _masked_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.startswith('\\"'):
        return f'{match.group("head")}\\"{MASK}\\"'
    if value[0] in "\"'":
        return f"{match.group('head')}{value[0]}{MASK}{value[0]}"
    # an unquoted value (a number) under a quoted key: a string keeps JSON/Python valid
    return f'{match.group("head")}"{MASK}"'


def _masked_bare(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if len(value) > 1 and value[0] in "\"'" and value[-1] == value[0] else ""
    return f"{match.group('head')}{quote}{MASK}{quote}"


def secret_name(key: str) -> bool:
    """Whether a variable or field name says its value is a secret."""
    return _SECRET_KEY.search(key) is not None


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        self._secrets = sorted({*self._secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
        value = _AUTHORIZATION.sub(rf"\g<1>{MASK}", value)
        value = _QUOTED_PAIR.sub(_masked_pair, value)
        return _BARE_PAIR.sub(_masked_bare, value)

    def scrub(self, value: Any) -> Any:
        """Return a copy of a JSON-like structure with every string redacted and every
        scalar under a secret-looking key masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): MASK if secret_name(str(k)) and _scalar(v)
                    else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


def _scalar(value: Any) -> bool:
    """A value that can hold a secret by itself (None and booleans cannot)."""
    return isinstance(value, str | int | float | bytes) and not isinstance(value, bool) \
        and value != ""
