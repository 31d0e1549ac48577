#!/usr/bin/python3
"""link_delay: a TCP proxy that delays every byte by a fixed time, each way: latency on one
link of a lab (this kernel has no ``tc netem``).

Runs on a lab host (stdlib only, any Python >= 3.8), started and stopped by the role
``dalp_link`` (playbooks/roles/dalp_link). It listens on ``--listen HOST:PORT`` and, for every
connection, opens one to ``--to HOST:PORT``; whatever one side sends, the other receives
``--delay-ms`` later, in order, as over a long link. Nothing is buffered beyond what is in
flight: throughput is not capped, only delayed. When one side closes, what is still in flight
is delivered, then the other side is closed, as a link would. The proxy stops on SIGTERM or
after ``--max-seconds``, so a crashed drill cannot leave it running long; it writes its PID
to ``--pid-file`` and prints ``listening`` once it accepts connections.

    link_delay.py --listen 198.18.0.11:15432 --to 198.18.0.11:5432 --delay-ms 300 \
        --pid-file link.pid --max-seconds 3600
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Optional, Tuple

CHUNK = 65536
Item = Optional[Tuple[float, bytes]]  # (when it may be delivered, the bytes); None: EOF


def _address(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host, int(port)


async def _read(reader: asyncio.StreamReader, queue: asyncio.Queue[Item],
                delay: float) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass  # the side is gone: deliver what is in flight, then close the other side
    finally:
        queue.put_nowait(None)


async def _deliver(queue: asyncio.Queue[Item], writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the receiving side is gone: nothing left to deliver to
    finally:
        writer.close()


async def _pair(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                upstream: Tuple[str, int], delay: float) -> None:
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*upstream), timeout=5)
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"cannot reach {upstream[0]}:{upstream[1]}: {exc}", file=sys.stderr, flush=True)
        client_writer.close()
        return
    to_upstream: asyncio.Queue[Item] = asyncio.Queue()
    to_client: asyncio.Queue[Item] = asyncio.Queue()
    await asyncio.gather(_read(client_reader, to_upstream, delay),
                         _deliver(to_upstream, up_writer),
                         _read(up_reader, to_client, delay),
                         _deliver(to_client, client_writer))


async def _serve(args: argparse.Namespace) -> None:
    delay = args.delay_ms / 1000.0
    host, port = args.listen
    server = await asyncio.start_server(
        lambda r, w: _pair(r, w, args.to, delay), host, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(args.pid_file + ".tmp", "w", encoding="utf-8") as out:
        out.write(f"{os.getpid()}\n")
    os.replace(args.pid_file + ".tmp", args.pid_file)
    print("listening", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except asyncio.TimeoutError:
        print(f"stopping after --max-seconds {args.max_seconds}", file=sys.stderr, flush=True)
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--delay-ms", type=int, required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
