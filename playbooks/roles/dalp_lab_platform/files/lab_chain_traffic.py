#!/usr/bin/env python3
"""lab_chain_traffic: transactions on the lab's chain (lab support, not product code).

The chain (anvil) stands for the external network DALP indexes: it has users of its own, who
keep sending transactions whatever happens to a DALP site. This sends a value transfer between
two of anvil's unlocked development accounts (eth_sendTransaction) every --every seconds, so
that blocks carry transactions for the indexer to index. Errors (the node restarting) are
logged and retried. Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import httpx


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} lab_chain_traffic: {message}", flush=True)


def call(client: httpx.Client, url: str, method: str, *params: object) -> object:
    answer = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                    "params": list(params)})
    answer.raise_for_status()
    body = answer.json()
    if body.get("error"):
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rpc", required=True, help="the chain's JSON-RPC URL")
    parser.add_argument("--every", type=float, default=0.3, help="seconds between transactions")
    args = parser.parse_args(argv)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sent = 0
    with httpx.Client(timeout=2.0) as client:
        accounts: list[str] = []
        while True:
            try:
                if len(accounts) < 2:
                    found = call(client, args.rpc, "eth_accounts")
                    accounts = [str(a) for a in found] if isinstance(found, list) else []
                    if len(accounts) < 2:
                        raise RuntimeError("the node has fewer than two unlocked accounts")
                    log(f"sending from {accounts[0]} to {accounts[1]} every {args.every:g} s")
                call(client, args.rpc, "eth_sendTransaction",
                     {"from": accounts[0], "to": accounts[1], "value": hex(sent + 1)})
                sent += 1
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                log(f"{type(exc).__name__}: {str(exc)[:200]}; retrying")
            time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
