"""Production guardrails, checked before a run takes its lock or touches anything.

* An inventory with ``dalp_production: true`` refuses an on-demand run unless the operator
  typed the drill's name: ``dalp-dr drill run FILE --confirm <drill-name>``.
* ``dalp_change_freezes`` in the inventory (a list of ``{from, to, reason}``, ISO 8601 times)
  are blackout windows: a scheduled run inside one is refused.

Both are read on every host of the inventory (a freeze set on one host applies to the drill);
an inventory that mixes production and non-production hosts is refused.

A refused run is recorded in the history (outcome ``refused``) with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from dalp_dr.clock import utcnow
from dalp_dr.errors import InventoryError
from dalp_dr.inventory import Inventory
from dalp_dr.results import Trigger


class Freeze(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    start: datetime
    end: datetime
    reason: str = "change freeze"


def freezes(inventory: Inventory) -> list[Freeze]:
    """Every host's change freezes (each window once)."""
    found: list[Freeze] = []
    for host, raw in inventory.per_host("dalp_change_freezes").items():
        for window in _windows(inventory, host, raw):
            if window not in found:
                found.append(window)
    return found


def _windows(inventory: Inventory, host: str, raw: Any) -> list[Freeze]:
    if raw in (None, ""):
        return []
    field = f"dalp_change_freezes (host {host})"
    if not isinstance(raw, list):
        raise InventoryError("must be a list of {from, to, reason}",
                             source=str(inventory.path), field=field)
    found = []
    for i, item in enumerate(raw):
        try:
            window = Freeze(start=item["from"], end=item["to"],
                            reason=str(item.get("reason") or "change freeze"))
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise InventoryError(f"entry {i}: needs 'from' and 'to' ISO 8601 times "
                                 f"({str(exc)[:200]})", source=str(inventory.path),
                                 field=field) from None
        if window.start.tzinfo is None or window.end.tzinfo is None:
            raise InventoryError(f"entry {i}: times need a timezone (e.g. Z)",
                                 source=str(inventory.path), field=field)
        found.append(window)
    return found


def refusal(inventory: Inventory, drill: str, trigger: Trigger, confirm: str | None,
            now: datetime | None = None) -> str | None:
    """Why this run must not start, or None."""
    moment = now or utcnow()
    if trigger is Trigger.CLI and inventory.is_production() and confirm != drill:
        return (f"the inventory {inventory.path.name} is production (dalp_production: true): "
                f"type the drill's name to run it on demand: --confirm {drill}")
    if trigger is Trigger.SCHEDULE:
        for window in freezes(inventory):
            if window.start <= moment < window.end:
                return (f"change freeze until {window.end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                        f" ({window.reason}, dalp_change_freezes in {inventory.path.name})")
    return None
