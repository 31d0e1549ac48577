"""What a bundle says, as verification reads it: the member names the layout allows, and the
shapes of manifest.json and records.json (pydantic models, strict).

Member names must come from the bundle layout (records.json, runs.csv, report.html,
public-key.pem, manifest.json, manifest.json.sig, evidence/<run id>/<relative path>),
relative, without ``.``/``..``. Names and messages taken from a bundle are shown with
:func:`printable`: one line, no control characters, bounded.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from dalp_dr import integrity
from dalp_dr.export.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE

RECORDS = "records.json"
TOP_LEVEL = frozenset({RECORDS, "runs.csv", "report.html", PUBLIC_KEY, MANIFEST, SIGNATURE})
EVIDENCE = "evidence"
_SEGMENT = re.compile(r"[^/\\]{1,255}")  # and the whole name printable


def name_problem(name: str, directory: bool) -> str | None:
    """Why ``name`` cannot be a member of a bundle (None: it can)."""
    if not name:
        return "empty name"
    if name.startswith("/"):
        return "absolute path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "not a plain relative path ('.', '..' or '//')"
    if not name.isprintable() or not all(_SEGMENT.fullmatch(p) for p in parts):
        return "control characters, backslashes or undecodable bytes in the name"
    if directory:
        return None if parts[0] == EVIDENCE else "unexpected directory"
    if name in TOP_LEVEL or (parts[0] == EVIDENCE and len(parts) >= 3):
        return None
    return "unexpected member (not part of a bundle)"


def printable(text: str, limit: int = 200) -> str:
    """``text`` (from a bundle or the command line) as one line: control characters escaped,
    at most ``limit`` characters."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def why(exc: BaseException) -> str:
    """An exception raised while reading a bundle, as one printable line."""
    return printable(str(exc) or type(exc).__name__)


_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Manifest(BaseModel):
    """manifest.json (validated only once its signature checked out)."""

    model_config = ConfigDict(frozen=True, strict=True)

    files: dict[str, _Sha256]
    chain_head: _Sha256
    records: int = Field(ge=0)
    period: str
    key_fingerprint: str
    generated_at: datetime
    # provenance (bundles written before it was added lack it)
    tool_version: str | None = None
    exporter: str | None = None
    exported_at: datetime | None = None
    controller: str | None = None

    @field_validator("files")
    @classmethod
    def _layout_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            problem = name_problem(name, directory=False)
            if problem is None and name in (MANIFEST, SIGNATURE):
                problem = "cannot list itself or its signature"
            if problem is not None:
                raise ValueError(f"'{printable(name)}': {problem}")
        return files


class RecordItem(BaseModel):
    """One record of records.json: its result, spec snapshot and chain entry."""

    model_config = ConfigDict(frozen=True, strict=True)

    result: dict[str, Any]
    spec_json: str
    chain: integrity.ChainEntry


class RecordsDocument(BaseModel):
    """records.json (parsed only once its digest matched the signed manifest)."""

    model_config = ConfigDict(frozen=True, strict=True)

    export: dict[str, Any]
    records: list[RecordItem]
    chain_segment: list[integrity.ChainEntry]
