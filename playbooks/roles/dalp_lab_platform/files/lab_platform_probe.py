#!/usr/bin/env python3
"""lab_platform_probe: what the lab's platform fixtures are doing, as one JSON object (lab
support for the hot-cold platform lab's playbooks: status, preflight, recover).

    chain --rpc URL [--wait S]
        {"head": N}: the chain's block height, waiting up to S seconds for the node to answer.
    site --conn-file F [--rpc URL] [--wait S] [--indexer-pid P] [--worker-pid P]
        What the site's database says about its workloads: the indexer's checkpoint and runs,
        the workflows by state, the worker runs; with --rpc, the chain's height read after
        them (`chain_head`, null when the node does not answer). With --indexer-pid /
        --worker-pid it waits (up to S seconds) until those processes have connected and
        recorded their start (a row in lab_indexer_run / lab_workflow_worker), and reports
        those rows. Tables that do not exist yet read as empty.

Exit 0 with the object; 1 (and the reason on stderr) when the deadline passed first. The
connection parameters are read from the file (JSON, mode 0600).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

SITE_SQL = {
    "indexer": """
        select json_build_object(
          'last_block', (select last_block from lab_indexer_checkpoint),
          'checkpoint_at', (select extract(epoch from updated_at) from lab_indexer_checkpoint),
          'events', (select count(*) from lab_indexer_event),
          'runs', (select count(*) from lab_indexer_run))""",
    "indexer_run": """
        select json_build_object('pid', pid, 'at', extract(epoch from started_at),
                                 'resumed_at_block', resumed_at_block,
                                 'from_checkpoint', from_checkpoint)
        from lab_indexer_run where pid = %s order by started_at desc limit 1""",
    "workflows": """
        select json_build_object(
          'running', count(*) filter (where state = 'running'),
          'completed', count(*) filter (where state = 'completed'),
          'stale_running', count(*) filter (where state = 'running'
                                            and updated_at < clock_timestamp() - interval '5 s'),
          'completions', (select count(*) from lab_workflow_completion))
        from lab_workflow""",
    "worker_run": """
        select json_build_object('pid', pid, 'worker', worker,
                                 'at', extract(epoch from started_at), 'resumed', resumed)
        from lab_workflow_worker where pid = %s order by started_at desc limit 1""",
}


def rpc_head(url: str) -> int:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                   "params": []}, timeout=2.0)
    answer.raise_for_status()
    return int(answer.json()["result"], 16)


def one(conn: psycopg.Connection[Any], sql: str, *params: object) -> Any:
    """The query's one value; None when a table it reads does not exist (yet)."""
    try:
        with conn.transaction():
            row = conn.execute(sql, params or None).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def site(args: argparse.Namespace) -> dict[str, Any]:
    params = json.loads(Path(args.conn_file).read_text())
    deadline = time.monotonic() + args.wait
    last_error = "not connected"
    while True:
        try:
            with psycopg.connect(**params, autocommit=True,
                                 application_name="lab_platform_probe") as conn:
                out = {"indexer": one(conn, SITE_SQL["indexer"]),
                       "workflows": one(conn, SITE_SQL["workflows"])}
                waiting = []
                if args.indexer_pid:
                    out["indexer_run"] = one(conn, SITE_SQL["indexer_run"], args.indexer_pid)
                    if out["indexer_run"] is None:
                        waiting.append(f"indexer (PID {args.indexer_pid})")
                if args.worker_pid:
                    out["worker_run"] = one(conn, SITE_SQL["worker_run"], args.worker_pid)
                    if out["worker_run"] is None:
                        waiting.append(f"workflow worker (PID {args.worker_pid})")
                if not waiting:
                    if args.rpc:
                        try:
                            out["chain_head"] = rpc_head(args.rpc)
                        except (httpx.HTTPError, KeyError, ValueError):
                            out["chain_head"] = None
                    return out
                last_error = f"{' and '.join(waiting)} not connected yet"
        except psycopg.Error as exc:
            last_error = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        if time.monotonic() >= deadline:
            raise TimeoutError(f"after {args.wait:g} s: {last_error}")
        time.sleep(0.1)


def chain(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.wait
    while True:
        try:
            return {"head": rpc_head(args.rpc)}
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"after {args.wait:g} s: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}") from None
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("chain")
    c.add_argument("--rpc", required=True)
    c.add_argument("--wait", type=float, default=0.0)
    s = sub.add_parser("site")
    s.add_argument("--conn-file", required=True)
    s.add_argument("--rpc")
    s.add_argument("--wait", type=float, default=0.0)
    s.add_argument("--indexer-pid", type=int)
    s.add_argument("--worker-pid", type=int)
    args = parser.parse_args(argv)
    try:
        out = chain(args) if args.command == "chain" else site(args)
    except (TimeoutError, OSError) as exc:
        print(f"lab_platform_probe {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
