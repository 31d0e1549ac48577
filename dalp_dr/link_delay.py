#!/usr/bin/python3
"""link_delay: a TCP proxy that delays every byte by a fixed time, each way: latency on one
link of a lab (this kernel has no ``tc netem``).

Runs on a lab host (stdlib only, any Python >= 3.8), started and stopped by the role
``dalp_link`` (playbooks/roles/dalp_link). It listens on ``--listen HOST:PORT`` and, for every
connection, opens one to ``--to HOST:PORT``; whatever one side sends, the other receives
``--delay-ms`` later, in order, as over a long link. Nothing is buffered beyond what is in
flight (at most IN_FLIGHT chunks each way; a side that does not read makes the other wait):
throughput is not capped, only delayed. When one side ends its stream, what is still in
flight is delivered, then that direction is half-closed while the other may go on, as over
a link; when a side is gone, the pair is closed. The proxy stops on SIGTERM or
after ``--max-seconds``, so a crashed drill cannot leave it running long; it writes its PID
to ``--pid-file`` and prints ``listening`` once it accepts connections.

    link_delay.py --listen 198.18.0.11:15432 --to 198.18.0.11:5432 --delay-ms 300 \
        --pid-file link.pid --max-seconds 3600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Optional, Tuple

CHUNK = 65536
IN_FLIGHT = 256
"""chunks on the link per direction at most (16 MiB): a side that does not read makes the
other side's sender wait, as a full TCP window would"""
Item = Optional[Tuple[float, bytes]]  # (when it may be delivered, the bytes); None: EOF


def _address(text: str) -> tuple[str, int]:
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
            await queue.put((time.monotonic() + delay, data))  # waits while the link is full
    except (ConnectionError, OSError):
        pass  # the side is gone: deliver what is in flight, then end the other direction
    # the end of the stream, after what is in flight (not in a finally: a reader cancelled
    # while the link is full would wait there for ever, its deliverer cancelled with it)
    await queue.put(None)


async def _deliver(queue: asyncio.Queue[Item], writer: asyncio.StreamWriter) -> None:
    """Deliver each chunk when due; at the end of the stream half-close (the other
    direction may still be talking), or stop when the receiving side is gone."""
    while True:
        item = await queue.get()
        if item is None:
            if writer.can_write_eof():
                writer.write_eof()
            return
        due, data = item
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        writer.write(data)
        await writer.drain()


async def _pair(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                upstream: tuple[str, int], delay: float) -> None:
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*upstream), timeout=5)
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"cannot reach {upstream[0]}:{upstream[1]}: {exc}", file=sys.stderr, flush=True)
        client_writer.close()
        return
    to_upstream: asyncio.Queue[Item] = asyncio.Queue(IN_FLIGHT)
    to_client: asyncio.Queue[Item] = asyncio.Queue(IN_FLIGHT)
    tasks = [asyncio.ensure_future(t) for t in (
        _read(client_reader, to_upstream, delay), _deliver(to_upstream, up_writer),
        _read(up_reader, to_client, delay), _deliver(to_client, client_writer))]
    try:
        # both directions delivered to their end, or one side gone: then the pair is over
        done, _ = await asyncio.wait(tasks[1::2], return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None and not isinstance(
                    task.exception(), (ConnectionError, OSError)):
                print(f"link: {task.exception()!r}", file=sys.stderr, flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client_writer.close()
        up_writer.close()


async def _serve(args: argparse.Namespace) -> None:
    delay = args.delay_ms / 1000.0
    host, port = args.listen
    pairs: set[asyncio.Task[None]] = set()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(_pair(reader, writer, args.to, delay))
        pairs.add(task)
        task.add_done_callback(pairs.discard)

    server = await asyncio.start_server(connected, host, port, reuse_address=True)
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
    finally:
        server.close()
        for task in list(pairs):
            task.cancel()
        await asyncio.gather(*pairs, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.pid_file)


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
