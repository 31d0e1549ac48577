#!/usr/bin/python
# Copyright: dalp-dr maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""dalp.dr.drill: run one dalp-dr drill, the whole of it, in one process."""

from __future__ import annotations

import json
import os
import sys

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: drill
short_description: Run one dalp-dr disaster-recovery drill and publish its outcome
description:
  - Runs C(dalp-dr drill run) for one drill file on the node the task runs on (an AWX or
    Automation Platform execution node), as one process for the whole drill, so that the
    drill's client heartbeat spans its fault, recovery and verification.
  - The run is recorded in the history store dalp-dr is configured with (C(DALP_DR_STORE)
    in the job's environment, or O(store)), its evidence kept where C(DALP_DR_RESULTS) and
    C(DALP_DR_EVIDENCE) say.
  - Unless the task fails, the outcome, figures, verdicts, run id and evidence location are
    published with C(set_stats) (per_host false) under the key C(dalp_dr), so AWX stores them
    as the job's artifacts and hands them to the next workflow node. A failed task publishes
    nothing (Ansible drops a failed task's stats), so a job that must publish a missed drill
    sets O(fail_on_miss=false) and fails afterwards, as the playbook C(dalp.dr.run) does.
  - Requires dalp-dr installed for the Python that runs the module (the execution
    environment's).
version_added: 0.1.0
author: dalp-dr maintainers
options:
  drill:
    description: The drill file.
    type: path
    required: true
  project_dir:
    description: Where drills/, playbooks/ and inventories/ live (C(--project-dir)).
    type: path
  results_dir:
    description: The evidence directory (C(--results-dir)).
    type: path
  store:
    description:
      - The history store URL (C(DALP_DR_STORE)); passed to dalp-dr in its environment,
        never on its command line, and never logged.
    type: str
  operator:
    description: Who runs the drill, recorded with the run.
    type: str
  confirm:
    description: The drill's name, typed; required when the inventory is production.
    type: str
  wait_for_lock:
    description:
      - How long to wait while another run holds the environment's drill lock (a duration
        such as C(10m)); by default a busy environment is refused at once.
    type: str
  vault_password_file:
    description: Vault password files (or client scripts) for the drill's inventory.
    type: list
    elements: path
  vault_id:
    description: Vault identities, as ansible-playbook takes them.
    type: list
    elements: str
  fail_on_miss:
    description:
      - Fail the task when the drill did not pass (missed, inconclusive, failed, aborted or
        refused). When false the task succeeds and publishes the outcome for a later task to
        act on.
    type: bool
    default: true
notes:
  - Check mode is not supported. C(dalp-dr drill plan) is the dry run.
"""

EXAMPLES = r"""
- name: Run the quarterly hot-warm failover drill
  dalp.dr.drill:
    drill: drills/hot-warm-failover.yaml
    wait_for_lock: 10m
"""

RETURN = r"""
outcome:
  description: passed, missed, inconclusive, failed, preflight_failed, aborted or refused.
  returned: when the drill ran
  type: str
run_id:
  description: The run's id in the history.
  returned: when the drill ran
  type: str
exit_code:
  description: dalp-dr's exit code (0 objectives met, 1 missed or failed, 2 invalid input,
    130 interrupted). Not C(rc), which Ansible takes as the task's own failure (a missed
    drill would then fail the task and lose its published stats).
  returned: always
  type: int
dalp_dr:
  description: What is published with set_stats (outcome, figures, verdicts, evidence).
  returned: when the drill ran
  type: dict
result:
  description: The run's whole result, as C(dalp-dr drill run --json) prints it.
  returned: when the drill ran
  type: dict
"""

FIGURES = ("recovery_time", "recovery_time_lower_bound", "write_outage", "longest_write_wait",
           "rtt", "data_loss_window", "data_loss_window_lower_bound", "data_loss_basis",
           "lost_writes", "resolution")
"""the measured figures published (numbers and words of dalp-dr's own; no text a target
printed reaches the artifacts, which AWX hands to the next job as extra vars)"""


def published(result, evidence):
    """The artifacts: what an auditor or the next workflow node needs, nothing free-form."""
    measurements = result.get("measurements") or {}
    return {
        "run_id": result.get("run_id"),
        "drill": result.get("drill"),
        "environment": result.get("environment"),
        "outcome": result.get("outcome"),
        "passed": result.get("outcome") == "passed",
        "started_at": result.get("started_at"),
        "ended_at": result.get("ended_at"),
        "objectives": result.get("objectives") or {},
        "figures": {k: measurements.get(k) for k in FIGURES if k in measurements},
        "verdicts": [{k: v.get(k) for k in ("objective", "population", "status", "target",
                                              "measured", "margin")}
                     for v in result.get("verdicts") or []],
        "steady_state_restored": result.get("steady_state_restored"),
        "evidence": evidence,
    }


def command(params):
    argv = [sys.executable, "-m", "dalp_dr"]
    if params["project_dir"]:
        argv += ["--project-dir", params["project_dir"]]
    if params["results_dir"]:
        argv += ["--results-dir", params["results_dir"]]
    argv += ["drill", "run", params["drill"], "--json"]
    for flag, key in (("--operator", "operator"), ("--confirm", "confirm"),
                      ("--wait-for-lock", "wait_for_lock")):
        if params[key]:
            argv += [flag, params[key]]
    for path in params["vault_password_file"] or []:
        argv += ["--vault-password-file", path]
    for identity in params["vault_id"] or []:
        argv += ["--vault-id", identity]
    return argv


def main():
    module = AnsibleModule(
        argument_spec=dict(
            drill=dict(type="path", required=True),
            project_dir=dict(type="path"),
            results_dir=dict(type="path"),
            store=dict(type="str", no_log=True),
            operator=dict(type="str"),
            confirm=dict(type="str"),
            wait_for_lock=dict(type="str"),
            vault_password_file=dict(type="list", elements="path", no_log=False),
            vault_id=dict(type="list", elements="str"),
            fail_on_miss=dict(type="bool", default=True),
        ),
        supports_check_mode=False,
    )
    params = module.params
    env = dict(os.environ)
    if params["store"]:
        env["DALP_DR_STORE"] = params["store"]
    # an argv list, never a shell; the drill's progress (stderr) is kept for the message
    rc, out, err = module.run_command(command(params), environ_update=env,
                                      cwd=params["project_dir"] or None)
    try:
        printed = json.loads(out) if out.strip() else None
    except ValueError:
        printed = None
    tail = "\n".join(err.strip().splitlines()[-20:])
    if not isinstance(printed, dict) or "run_id" not in printed:
        # refused before a run existed (invalid input, unreachable target, busy environment)
        error = printed.get("error") if isinstance(printed, dict) else None
        if isinstance(error, dict):  # dalp-dr's own refusal: file, field, message, hint
            where = ": ".join(str(error[k]) for k in ("file", "field") if error.get(k))
            message = (f"{where}: " if where else "") + str(error.get("message")) + (
                f" ({error['hint']})" if error.get("hint") else "")
        else:
            message = tail or f"exit {rc}"
        module.fail_json(msg=f"dalp-dr drill run: {message}", exit_code=rc, error=error,
                         stderr_tail=tail)
    if "evidence_url" in printed:  # DALP_DR_EVIDENCE set: the bucket's copy, or none
        evidence = printed.get("evidence_url")
    else:  # kept on this node's disk only
        evidence = printed.get("evidence_dir")
    stats = published(printed, evidence)
    if printed.get("evidence_problem"):
        stats["evidence_problem"] = "the copy to DALP_DR_EVIDENCE failed (see the task's result)"
    answer = dict(changed=True, exit_code=rc, outcome=printed.get("outcome"),
                  run_id=printed.get("run_id"), dalp_dr=stats, result=printed)
    if printed.get("recorded") is False:
        # the history did not take it: whatever its outcome, the job must not read as done
        module.fail_json(msg=f"drill {stats['drill']}: run {stats['run_id']} ended "
                             f"{stats['outcome']} but was NOT RECORDED in the history "
                             "(dalp-dr records it once the store is back)",
                         stderr_tail=tail, **answer)
    if params["fail_on_miss"] and stats["outcome"] != "passed":
        module.fail_json(msg=f"drill {stats['drill']}: {stats['outcome']} "
                             f"(run {stats['run_id']}, exit {rc})", stderr_tail=tail,
                         **answer)
    answer["ansible_stats"] = {"data": {"dalp_dr": stats}, "per_host": False,
                               "aggregate": False}
    module.exit_json(**answer)


if __name__ == "__main__":
    main()
