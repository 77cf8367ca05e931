"""A fault proxy for `make reliability`, part 4: DynamoDB's calls alone throttled, stalled or refused.

moto never throttles, and stopping or pausing its server fails Firehose too; this proxy in front of it fails
DynamoDB's calls alone. It binds 127.0.0.1; the caller stops it in a ``finally``.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
from collections import Counter
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

THROTTLED_BODY = json.dumps(
    {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "throttled"}
).encode()


class DynamoProxy:
    """Forwards HTTP to the second moto, and can fault DynamoDB's calls alone (``X-Amz-Target: DynamoDB_*``).

    ``share``: that share of them is answered with a throttling 400 (moto never throttles). ``stall()``: they are
    held unanswered until ``release()`` (a stalled table while Firehose answers). ``stop()`` then ``start()``:
    refused, then back on the same port.
    """

    def __init__(self, upstream_port: int, share: float = 0.0, seed: int = 7) -> None:
        self.upstream_port, self.share = upstream_port, share
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.released = threading.Event()
        self.released.set()
        self.port = 0
        self.endpoint = ""
        self.server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()  # open client connections: a stopped server resets them

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.connections.add(self.connection)

            def finish(self) -> None:
                with proxy.lock:
                    proxy.connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def do_POST(self) -> None:
                proxy.handle(self)

            def do_GET(self) -> None:
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # port 0 the first time
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:  # keep-alive connections too: nothing answers on this port any more
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        dynamo = (request.headers.get("X-Amz-Target") or "").startswith("DynamoDB_")
        with self.lock:
            throttle = dynamo and self.random.random() < self.share
            self.counts["dynamodb_calls" if dynamo else "other_calls"] += 1
            self.counts["throttled"] += throttle
        if dynamo and not self.released.is_set():
            with self.lock:
                self.counts["stalled"] += 1
            self.released.wait(120)  # then answered, as a resumed server answers its backlog
        if throttle:
            status, headers, payload = 400, [("Content-Type", "application/x-amz-json-1.0")], THROTTLED_BODY
        else:
            upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            try:
                upstream.request(request.command, request.path, body=body, headers=dict(request.headers))
                response = upstream.getresponse()
                status, payload = response.status, response.read()
                skip = {"content-length", "transfer-encoding", "connection"}
                headers = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
            except (OSError, http.client.HTTPException):
                status, headers, payload = 502, [], b""
            finally:
                upstream.close()
        try:
            request.send_response(status)
            for name, value in headers:
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except OSError:  # the client gave up on a stalled call
            request.close_connection = True
