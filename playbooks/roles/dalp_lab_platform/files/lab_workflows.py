#!/usr/bin/env python3
"""lab_workflows: the lab's stand-in for DALP's durable workflow engine (lab support, not
product code).

Workflows are checkpointed in PostgreSQL, one step at a time, the way a durable workflow engine
keeps its state:

    lab_workflow             id, started_at, state (running | completed), step, updated_at
    lab_workflow_step        one row per step executed (the step's effect): workflow, step,
                             the worker that ran it
    lab_workflow_completion  one row per completion: workflow_id, completed_at. Deliberately
                             WITHOUT a unique constraint: a workflow completed twice is visible.
    lab_workflow_worker      one row per worker start: when, its PID, how many workflows it
                             found in flight (and so resumed)

A step's effect, the workflow's new step (its checkpoint) and, on the last step, the completion
are written in ONE transaction, guarded by the step the worker read (`where step = %s and state
= 'running'`): a step retried after a lost commit answer, or by a second worker, changes
nothing. A worker that starts (again) resumes every running workflow from its last checkpoint.

A starter in the same loop starts a new workflow every --start-every seconds, so that some are
always in flight (a fault catches them half way). A step is due --step-seconds after the
previous one (database time), and a workflow has --steps steps. The connection parameters are
read from --conn-file (JSON, mode 0600). Reconnects after database errors; runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

SCHEMA = """
create table if not exists lab_workflow (
    id bigserial primary key,
    started_at timestamptz not null default clock_timestamp(),
    state text not null default 'running' check (state in ('running', 'completed')),
    step integer not null default 0,
    updated_at timestamptz not null default clock_timestamp()
);
create index if not exists lab_workflow_running on lab_workflow (updated_at)
    where state = 'running';
create table if not exists lab_workflow_step (
    workflow_id bigint not null,
    step integer not null,
    worker text not null,
    done_at timestamptz not null default clock_timestamp()
);
create table if not exists lab_workflow_completion (
    workflow_id bigint not null,
    completed_at timestamptz not null default clock_timestamp()
);
create table if not exists lab_workflow_worker (
    worker text not null,
    started_at timestamptz not null default clock_timestamp(),
    pid integer not null,
    resumed integer not null
);
"""

RETRY_SECONDS = 0.5
BATCH = 100


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} lab_workflows: {message}", flush=True)


def connect(params: dict[str, Any], worker: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(**params, autocommit=True, application_name="lab_workflows")
    conn.execute(SCHEMA)
    row = conn.execute(
        "insert into lab_workflow_worker (worker, pid, resumed) select %s, %s, count(*)"
        " from lab_workflow where state = 'running' returning resumed",
        (worker, os.getpid())).fetchone()
    log(f"connected as {worker}; resuming {row[0] if row else 0} workflows in flight")
    return conn


def start_one(conn: psycopg.Connection[Any]) -> None:
    conn.execute("insert into lab_workflow default values")


def advance(conn: psycopg.Connection[Any], worker: str, steps: int, step_seconds: float
            ) -> int:
    """Every due step, each in its own transaction; how many were taken."""
    due = conn.execute(
        "select id, step from lab_workflow where state = 'running'"
        " and updated_at <= clock_timestamp() - make_interval(secs => %s)"
        " order by updated_at limit %s", (step_seconds, BATCH)).fetchall()
    taken = 0
    for workflow_id, step in due:
        with conn.transaction():
            row = conn.execute(
                "update lab_workflow set step = step + 1, updated_at = clock_timestamp(),"
                " state = case when step + 1 >= %s then 'completed' else 'running' end"
                " where id = %s and step = %s and state = 'running' returning state",
                (steps, workflow_id, step)).fetchone()
            if row is None:  # someone else took this step: nothing to do
                continue
            conn.execute("insert into lab_workflow_step (workflow_id, step, worker)"
                         " values (%s, %s, %s)", (workflow_id, step + 1, worker))
            if row[0] == "completed":
                conn.execute("insert into lab_workflow_completion (workflow_id) values (%s)",
                             (workflow_id,))
            taken += 1
    return taken


def run(args: argparse.Namespace) -> int:
    params = json.loads(Path(args.conn_file).read_text())
    worker = f"{socket.gethostname()}:{os.getpid()}:{args.name}"
    conn: psycopg.Connection[Any] | None = None
    next_start = time.monotonic()
    while True:
        try:
            if conn is None:
                conn = connect(params, worker)
            if args.start_every > 0 and time.monotonic() >= next_start:
                start_one(conn)
                next_start = time.monotonic() + args.start_every
            advance(conn, worker, args.steps, args.step_seconds)
            time.sleep(args.tick)
        except psycopg.Error as exc:
            log(f"database: {type(exc).__name__}: {str(exc).strip()[:200]}; reconnecting")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(RETRY_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conn-file", required=True, help="JSON file: libpq connection parameters")
    parser.add_argument("--name", default="worker", help="this worker's name (in its rows)")
    parser.add_argument("--steps", type=int, default=3, help="steps per workflow")
    parser.add_argument("--step-seconds", type=float, default=0.3,
                        help="a step is due this long after the previous one")
    parser.add_argument("--start-every", type=float, default=0.25,
                        help="start a new workflow this often (0: start none)")
    parser.add_argument("--tick", type=float, default=0.05, help="seconds between rounds")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"{args.steps} steps of {args.step_seconds:g} s, a new workflow every "
        f"{args.start_every:g} s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
