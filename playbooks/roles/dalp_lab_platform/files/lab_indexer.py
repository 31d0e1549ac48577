#!/usr/bin/env python3
"""lab_indexer: the lab's stand-in for DALP's chain indexer (lab support, not product code).

Follows an EVM chain over JSON-RPC (eth_blockNumber, eth_getBlockByNumber) into PostgreSQL,
block by block, the way DALP's indexer keeps indexed chain state:

    lab_indexer_event       one row per transaction: block number and hash, transaction index
                            and hash, sender, recipient. Deliberately WITHOUT a unique
                            constraint on the event's identity (block hash, transaction
                            index): a block indexed twice is visible as duplicate rows.
    lab_indexer_checkpoint  one row: the last indexed block (number, hash), written in the SAME
                            transaction as that block's events, so the two never disagree,
                            whatever is restored from a backup.
    lab_indexer_run         one row per (re)connection: when, its PID, the block it resumed at
                            and whether that came from the checkpoint.

On start (and after every database error) it resumes from the checkpoint: the block after it,
or --start-block when there is no checkpoint. It never trusts its own memory of what it
committed: a commit whose answer was lost is read back from the checkpoint. A block whose
parent hash is not the checkpoint's hash (another chain, or a reorganisation) stops it with an
error instead of indexing onto the wrong history.

--pace caps how many blocks per second it indexes, so that catching up after an outage takes a
measurable time, as a real indexer's does. The database connection parameters are read
from --conn-file (JSON, mode 0600: the password is on no command line). Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

SCHEMA = """
create table if not exists lab_indexer_event (
    block_number bigint not null,
    block_hash text not null,
    tx_index integer not null,
    tx_hash text not null,
    tx_from text,
    tx_to text,
    indexed_at timestamptz not null default clock_timestamp()
);
create index if not exists lab_indexer_event_block on lab_indexer_event (block_number);
create table if not exists lab_indexer_checkpoint (
    id boolean primary key default true check (id),
    last_block bigint not null,
    block_hash text not null,
    updated_at timestamptz not null default clock_timestamp()
);
create table if not exists lab_indexer_run (
    pid integer not null,
    started_at timestamptz not null default clock_timestamp(),
    resumed_at_block bigint not null,
    from_checkpoint boolean not null
);
"""

RETRY_SECONDS = 0.5


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} lab_indexer: {message}", flush=True)


class Chain:
    def __init__(self, url: str, timeout: float) -> None:
        self._client = httpx.Client(timeout=timeout)
        self._url = url
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        answer = self._client.post(self._url, json={"jsonrpc": "2.0", "id": self._id,
                                                    "method": method, "params": list(params)})
        answer.raise_for_status()
        body = answer.json()
        if body.get("error"):
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def head(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def block(self, number: int) -> dict[str, Any]:
        block = self.call("eth_getBlockByNumber", hex(number), True)
        if block is None:
            raise RuntimeError(f"block {number} not found")
        return dict(block)


def connect(params: dict[str, Any]) -> psycopg.Connection[Any]:
    conn = psycopg.connect(**params, autocommit=True, application_name="lab_indexer")
    conn.execute(SCHEMA)
    return conn


def checkpoint(conn: psycopg.Connection[Any]) -> tuple[int, str] | None:
    row = conn.execute("select last_block, block_hash from lab_indexer_checkpoint").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def index_block(conn: psycopg.Connection[Any], block: dict[str, Any]) -> int:
    """The block's transactions and the checkpoint, in one transaction."""
    number = int(block["number"], 16)
    txs = block.get("transactions") or []
    with conn.transaction(), conn.cursor() as cur:
        if txs:
            cur.executemany(
                "insert into lab_indexer_event (block_number, block_hash, tx_index, tx_hash,"
                " tx_from, tx_to) values (%s, %s, %s, %s, %s, %s)",
                [(number, block["hash"], int(tx["transactionIndex"], 16), tx["hash"],
                  tx.get("from"), tx.get("to")) for tx in txs])
        cur.execute(
            "insert into lab_indexer_checkpoint (last_block, block_hash) values (%s, %s)"
            " on conflict (id) do update set last_block = excluded.last_block,"
            " block_hash = excluded.block_hash, updated_at = clock_timestamp()",
            (number, block["hash"]))
    return len(txs)


def run(args: argparse.Namespace) -> int:
    params = json.loads(Path(args.conn_file).read_text())
    chain = Chain(args.rpc, args.rpc_timeout)
    interval = 1.0 / args.pace
    conn: psycopg.Connection[Any] | None = None
    expected: tuple[int, str] | None = None  # (next block, its parent's hash)
    indexed = 0
    behind_since: float | None = time.monotonic()  # not caught up yet since this start
    while True:
        try:
            if conn is None:
                conn = connect(params)
                done = checkpoint(conn)
                expected = (done[0] + 1, done[1]) if done else (args.start_block, "")
                conn.execute("insert into lab_indexer_run (pid, resumed_at_block,"
                             " from_checkpoint) values (%s, %s, %s)",
                             (os.getpid(), expected[0], done is not None))
                log(f"connected; resuming at block {expected[0]}"
                    + (" (checkpoint)" if done else " (no checkpoint: --start-block)"))
            assert expected is not None
            if expected[0] > chain.head():
                if behind_since is not None:
                    log(f"caught up: block {expected[0] - 1} indexed, "
                        f"{time.monotonic() - behind_since:.1f} s after start, "
                        f"{indexed} transactions")
                    behind_since = None
                time.sleep(args.poll)
                continue
            started = time.monotonic()
            block = chain.block(expected[0])
            if expected[1] and block["parentHash"] != expected[1]:
                log(f"block {expected[0]}'s parent {block['parentHash']} is not the indexed "
                    f"block {expected[0] - 1} ({expected[1]}): another chain or a "
                    "reorganisation; stopping")
                return 3
            indexed += index_block(conn, block)
            expected = (expected[0] + 1, block["hash"])
            rest = interval - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
        except psycopg.Error as exc:
            log(f"database: {type(exc).__name__}: {str(exc).strip()[:200]}; reconnecting")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(RETRY_SECONDS)
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
            log(f"chain: {type(exc).__name__}: {str(exc)[:200]}; retrying")
            time.sleep(RETRY_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conn-file", required=True, help="JSON file: libpq connection parameters")
    parser.add_argument("--rpc", required=True, help="the chain's JSON-RPC URL")
    parser.add_argument("--pace", type=float, default=5.0, help="blocks per second at most")
    parser.add_argument("--start-block", type=int, default=0,
                        help="where to start without a checkpoint")
    parser.add_argument("--poll", type=float, default=0.2,
                        help="seconds between head polls when caught up")
    parser.add_argument("--rpc-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.pace <= 0:
        parser.error("--pace must be positive")

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"following {args.rpc} at up to {args.pace:g} blocks/s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
