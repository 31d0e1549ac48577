#!/usr/bin/python
"""Ansible module: an RDS point-in-time restore drill's steps, through
dalp_dr.managed.rds_restore (boto3).

Runs on the controller (ansible_connection: local, ansible_python_interpreter:
"{{ ansible_playbook_python }}"), where dalp_dr is importable.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dalp_rds_restore
short_description: >-
  Preflight, restore to a point in time, wait, verify and delete an RDS instance's restore
options:
  identifier: {description: the source DB instance, required: true, type: str}
  region: {description: AWS region (default from the environment), type: str}
  endpoint_url: {description: RDS API endpoint (tests, VPC endpoints), type: str}
  action: {description: preflight, fault, restore, wait, verify or delete, required: true,
           type: str}
  run_id: {description: the drill run; the restored instance is named and tagged from it,
           required: true, type: str}
  rpo_seconds: {description: how old LatestRestorableTime may be (preflight), type: float}
  restore_time: {description: the point in time to restore to (restore; default latest),
                 type: str}
  fault_instant: {description: epoch seconds of the fault (restore), type: float}
  endpoint_check: {description: required, report or off (verify), type: str,
                   default: required}
  timeout: {description: seconds to wait (wait, delete), type: float, default: 3600}
  poll: {description: seconds between polls (wait, delete), type: float, default: 15}
"""


def _when(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "identifier": {"type": "str", "required": True},
            "region": {"type": "str"},
            "endpoint_url": {"type": "str"},
            "action": {"type": "str", "required": True,
                       "choices": ["preflight", "fault", "restore", "wait", "verify",
                                   "delete"]},
            "run_id": {"type": "str", "required": True},
            "rpo_seconds": {"type": "float"},
            "restore_time": {"type": "str"},
            "fault_instant": {"type": "float"},
            "latest_restorable_at_fault": {"type": "str"},
            "endpoint_check": {"type": "str", "default": "required",
                               "choices": ["required", "report", "off"]},
            "timeout": {"type": "float", "default": 3600.0},
            "poll": {"type": "float", "default": 15.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        from dalp_dr.errors import DalpDrError
        from dalp_dr.managed.rds_restore import (
            RdsRestore,
            delete_and_wait,
            restored_identifier,
            verify,
            wait_for,
        )
        from dalp_dr.managed.restore_models import EndpointCheck
    except ImportError as exc:
        module.fail_json(msg=f"dalp_dr is not importable here ({exc}): run this module on the "
                             "controller with ansible_python_interpreter: "
                             "'{{ ansible_playbook_python }}'")
        return
    try:
        api = RdsRestore(p["identifier"], region=p["region"], endpoint_url=p["endpoint_url"])
        target = restored_identifier(p["identifier"], p["run_id"])
        action = p["action"]
        if action == "preflight":
            source = api.source()
            problems = api.problems(source, rpo_seconds=p["rpo_seconds"] or 0.0, target=target)
            result: dict[str, Any] = {"source": source.model_dump(mode="json"),
                                      "target": target,
                                      "problems": [x.model_dump() for x in problems]}
            if problems:
                module.fail_json(msg=f"{p['identifier']}: " + "; ".join(map(str, problems))
                                 + "; refusing to start the restore drill", **result)
            module.exit_json(changed=False, **result)
        if action == "fault":
            # the fault is simulated: the source is not touched; its backups are read at
            # the instant the instance would have been lost
            fault = time.time()
            source = api.source()
            module.exit_json(changed=False, fault_instant=fault, target=target,
                             source=source.model_dump(mode="json"))
        if action == "restore":
            if module.check_mode:
                module.exit_json(changed=False, target=target)
            try:
                when = (datetime.fromisoformat(p["restore_time"]) if p["restore_time"]
                        else None)
            except ValueError:
                module.fail_json(msg=f"restore_time {p['restore_time']!r} is not an ISO 8601 "
                                     "time (e.g. 2026-10-01T03:00:00+00:00)")
                return
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            request = api.restore(target, p["run_id"], when)
            fault = (datetime.fromtimestamp(p["fault_instant"], UTC)
                     if p["fault_instant"] is not None else None)
            try:  # the source's LatestRestorableTime read at the fault (inject)
                held = (datetime.fromisoformat(p["latest_restorable_at_fault"])
                        if p["latest_restorable_at_fault"] else None)
            except ValueError:
                held = None
            if held is not None and held.tzinfo is None:
                held = held.replace(tzinfo=UTC)
            module.exit_json(
                changed=True, target=target, seconds=request.seconds,
                requested_at=request.requested_at.timestamp(),
                restore_time=_when(request.restore_time),
                latest_restorable_at_start=_when(request.latest_restorable_at_start),
                restored_time=_when(request.restored_time),
                latest_restorable_at_fault=_when(held),
                data_loss_bound=(request.data_loss_bound(fault, held) if fault else None))
        if action == "wait":
            watch = wait_for(lambda: api.restored(target),
                             lambda now: now is not None and now.status == "available",
                             timeout=p["timeout"], poll=p["poll"])
            result = {"target": target, "waited": watch.waited,
                      "reached_at": time.time() if watch.reached else None,
                      "final": watch.final.model_dump(mode="json") if watch.final else None,
                      "transitions": [t.model_dump(mode="json") for t in watch.transitions]}
            if not watch.reached:
                module.fail_json(msg=(f"{target} is not available after {p['timeout']:g} s: "
                                      + (watch.final.status if watch.final else "not there")),
                                 **result)
            module.exit_json(changed=False, **result)
        if action == "verify":
            started = time.monotonic()
            checked, problems_found = verify(api, target, p["run_id"],
                                             endpoint=EndpointCheck(p["endpoint_check"]))
            result = {"target": target, "verified": checked, "problems": problems_found,
                      "seconds": round(time.monotonic() - started, 3)}
            if problems_found:
                module.fail_json(msg=f"restored instance {target}: " + "; ".join(problems_found),
                                 **result)
            module.exit_json(changed=False, **result)
        # delete
        if module.check_mode:
            module.exit_json(changed=False, target=target)
        watch = delete_and_wait(api, target, p["run_id"], timeout=p["timeout"],
                                poll=p["poll"])
        existed = bool(watch.transitions) and watch.transitions[0].status != "gone"
        result = {"target": target, "waited": watch.waited, "existed": existed,
                  "transitions": [t.model_dump(mode="json") for t in watch.transitions]}
        if not watch.reached:
            module.fail_json(msg=(f"{target} is still there after {p['timeout']:g} s ("
                                  + (watch.final.status if watch.final else "?")
                                  + "): delete it by hand"), **result)
        module.exit_json(changed=existed, **result)
    except DalpDrError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
