"""Reviewer sign-off: an approval of a sealed run, itself sealed into the hash chain.

``dalp-dr history approve RUN --reviewer NAME --note TEXT`` appends one approval record
(``approvals`` table, schema 5) and, in the same transaction, a chain entry for it: its
chain ``run_id`` is the approval's id (``approval:<run id>:<time>``), its record digest is
over the approval's JSON and :data:`APPROVAL_SPEC`. ``history verify`` therefore catches an
approval that was edited (digest), deleted (record deleted), or inserted behind the store's
back (a row no chain entry seals). Readers take approvals only from the chain
(:func:`approvals_of`), never from the table alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError

from dalp_dr.errors import InvalidInput
from dalp_dr.integrity import SealedRecord

PREFIX = "approval:"
"""of every approval's id (its chain entry's run_id)"""

APPROVAL_SPEC = '{"kind": "approval"}'
"""the spec snapshot an approval is sealed with (approvals have no drill spec)"""

MAX_NOTE = 4000


class Approval(BaseModel, frozen=True):
    """One reviewer's sign-off of one sealed run."""

    approval_id: str
    run_id: str
    reviewer: str = Field(min_length=1, max_length=200)
    note: str = Field(max_length=MAX_NOTE)
    approved_at: datetime

    @classmethod
    def new(cls, run_id: str, reviewer: str, note: str, now: datetime) -> Approval:
        """A new approval; InvalidInput for an empty reviewer or a note too long."""
        name = reviewer.strip()
        if not name:
            raise InvalidInput("the reviewer's name is empty", field="--reviewer",
                               hint="e.g. --reviewer 'Jane Doe (internal audit)'")
        if len(name) > 200 or "\n" in name:
            raise InvalidInput("the reviewer's name is one line of at most 200 characters",
                               field="--reviewer", hint="put details in --note")
        if len(note) > MAX_NOTE:
            raise InvalidInput(f"the note is {len(note)} characters (at most {MAX_NOTE})",
                               field="--note", hint="shorten it; link to a document instead")
        moment = now.astimezone(UTC)
        return cls(approval_id=f"{PREFIX}{run_id}:{moment:%Y%m%dT%H%M%S.%fZ}", run_id=run_id,
                   reviewer=name, note=note, approved_at=moment)


def is_approval(chain_run_id: str) -> bool:
    return chain_run_id.startswith(PREFIX)


def approvals_of(records: Iterable[SealedRecord]) -> dict[str, list[Approval]]:
    """run id -> its approvals (oldest first), from the chain's sealed approval records.
    A record that is gone or not an approval is left out (``history verify`` names it)."""
    found: dict[str, list[Approval]] = {}
    for sealed in records:
        if not is_approval(sealed.entry.run_id) or sealed.result_json is None:
            continue
        try:
            approval = Approval.model_validate_json(sealed.result_json)
        except ValidationError:
            continue
        found.setdefault(approval.run_id, []).append(approval)
    return found
