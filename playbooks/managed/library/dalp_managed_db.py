#!/usr/bin/python
"""Ansible module: a managed database's failover, through dalp_dr.managed (boto3).

Runs on the controller (ansible_connection: local, ansible_python_interpreter:
"{{ ansible_playbook_python }}"), where dalp_dr is importable.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dalp_managed_db
short_description: >-
  Read, preflight, fail over and wait on an AWS RDS Multi-AZ instance or Aurora cluster
options:
  kind: {description: rds-multi-az or aurora, required: true, type: str}
  identifier: {description: DB instance or cluster identifier, required: true, type: str}
  region: {description: AWS region (default from the environment), type: str}
  endpoint_url: {description: RDS API endpoint (tests, VPC endpoints), type: str}
  action: {description: state, preflight, failover or wait, required: true, type: str}
  target: {description: Aurora reader to promote (failover, wait), type: str}
  before: {description: the state returned by failover (wait), type: dict}
  since: {description: epoch seconds; provider events from then on (wait), type: float}
  timeout: {description: seconds to wait for the failover (wait), type: float, default: 900}
  poll: {description: seconds between polls (wait), type: float, default: 5}
"""



def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "kind": {"type": "str", "required": True, "choices": ["rds-multi-az", "aurora"]},
            "identifier": {"type": "str", "required": True},
            "region": {"type": "str"},
            "endpoint_url": {"type": "str"},
            "action": {"type": "str", "required": True,
                       "choices": ["state", "preflight", "failover", "wait"]},
            "target": {"type": "str"},
            "before": {"type": "dict"},
            "since": {"type": "float"},
            "timeout": {"type": "float", "default": 900.0},
            "poll": {"type": "float", "default": 5.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        from dalp_dr.errors import DalpDrError
        from dalp_dr.managed import open_managed, wait_for_failover
        from dalp_dr.managed.base import ManagedState
    except ImportError as exc:
        module.fail_json(msg=f"dalp_dr is not importable here ({exc}): run this module on the "
                             "controller with ansible_python_interpreter: "
                             "'{{ ansible_playbook_python }}'")
        return
    try:
        db = open_managed(p["kind"], p["identifier"], region=p["region"],
                          endpoint_url=p["endpoint_url"])
        action = p["action"]
        if action == "state":
            module.exit_json(changed=False, state=db.state().model_dump(mode="json"))
        if action == "preflight":
            state = db.state()
            problems = db.preflight(state)
            result: dict[str, Any] = {"state": state.model_dump(mode="json"),
                                      "problems": problems}
            if problems:
                module.fail_json(msg="; ".join(problems) + "; refusing to fail over", **result)
            module.exit_json(changed=False, **result)
        if action == "failover":
            before = db.state()
            problems = db.preflight(before)
            if problems:  # the state may have changed since preflight: still fail closed
                module.fail_json(msg="; ".join(problems) + "; refusing to fail over",
                                 state=before.model_dump(mode="json"))
            if module.check_mode:
                module.exit_json(changed=False, before=before.model_dump(mode="json"))
            requested = time.time()
            db.failover(before, p["target"])
            module.exit_json(changed=True, before=before.model_dump(mode="json"),
                             fault_instant=requested)
        # wait
        if not p["before"]:
            module.fail_json(msg="wait needs 'before' (the state failover returned)")
        before = ManagedState.model_validate(p["before"])
        watch = wait_for_failover(db, before, timeout=p["timeout"], poll=p["poll"],
                                  target=p["target"])
        since = (datetime.fromtimestamp(p["since"], UTC) if p["since"] is not None
                 else before.observed_at)
        events = db.events(since)
        timeline = [{"event": f"{db.kind}: {t.status}" + (f", writer {t.writer}" if t.writer
                                                         else ""),
                     "at": t.at.timestamp(), "source": "provider API"}
                    for t in watch.transitions]
        timeline += [{"event": f"{db.kind} event", "at": e.at.timestamp(), "detail": e.message,
                      "source": "provider event log"} for e in events]
        result = {"completed": watch.completed, "waited": round(watch.waited, 3),
                  "final": watch.final.model_dump(mode="json"), "timeline": timeline,
                  "transitions": [t.model_dump(mode="json") for t in watch.transitions]}
        if not watch.completed:
            module.fail_json(
                msg=(f"{db.kind} {db.identifier} did not fail over within {p['timeout']:g} s: "
                     f"status {watch.final.status}, writer {watch.final.writer} "
                     f"(was {before.writer})"), **result)
        module.exit_json(changed=False, **result)
    except DalpDrError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
