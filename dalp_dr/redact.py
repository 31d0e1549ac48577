"""Keeps secrets out of logs, evidence, history and exports.

A Redactor knows the secret values of a run (inventory passwords, DSN passwords) and also
masks anything that looks like a credential in a DSN or URL, whether or not it was known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"
_DSN_PASSWORD = re.compile(r"((?<![A-Za-z_])password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_ENV_PASSWORD = re.compile(r"(PGPASSWORD[\"']?\s*[=:]\s*[\"']?)([^\s\"',}]+)")


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
        value = _DSN_PASSWORD.sub(rf"\g<1>{MASK}", value)
        value = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
        return _ENV_PASSWORD.sub(rf"\g<1>{MASK}", value)

    def scrub(self, value: Any) -> Any:
        """Return a copy of a JSON-like structure with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value
