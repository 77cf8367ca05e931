"""A small, bounded HTTP/1.1 load generator: N keep-alive connections on 127.0.0.1, each sending requests back to back.

Raw asyncio streams rather than an HTTP client library: on a 2-core machine the client must cost less than the
server it measures. Every response is recorded with its start, latency, status and the ``model_version`` it names.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

_VERSION = re.compile(rb'"model_version":"([^"]+)"')


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""

    def wire(self, host: str) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nhost: {host}\r\n"
        if self.body:
            head += f"content-type: application/json\r\ncontent-length: {len(self.body)}\r\n"
        return head.encode() + b"\r\n" + self.body


@dataclass(frozen=True)
class Sample:
    start: float  # time.monotonic() when the request was sent
    latency: float  # seconds
    status: int  # 0: the connection failed or timed out
    version: str | None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _connection(
    host: str, port: int, requests: Sequence[Request], offset: int, until: float, timeout: float, out: list[Sample]
) -> None:
    payloads = [r.wire(f"{host}:{port}") for r in requests]
    i = offset
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            assert reader is not None and writer is not None
            writer.write(payloads[i % len(payloads)])
            await writer.drain()
            status, body = await asyncio.wait_for(_read_response(reader), timeout)
            found = _VERSION.search(body)
            out.append(Sample(start, time.monotonic() - start, status, found.group(1).decode() if found else None))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            out.append(Sample(start, time.monotonic() - start, 0, None))
            if writer is not None:
                writer.close()
            writer = reader = None
        i += 1
    if writer is not None:
        writer.close()


async def run_load(
    host: str, port: int, requests: Sequence[Request], connections: int, seconds: float, timeout: float = 30.0
) -> list[Sample]:
    """Keep ``connections`` connections busy for ``seconds``; every response (or failure) as a :class:`Sample`."""
    until = time.monotonic() + seconds
    samples: list[Sample] = []
    await asyncio.gather(*(_connection(host, port, requests, c, until, timeout, samples) for c in range(connections)))
    return sorted(samples, key=lambda s: s.start)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
