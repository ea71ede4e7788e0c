"""A local HTTP endpoint that keeps every JSON body posted to it: where test alerts are delivered."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver(ThreadingHTTPServer):
    """An HTTP endpoint on 127.0.0.1 keeping every JSON body posted to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.arrived:
            self.server.posts.append(json.loads(body))
            self.server.arrived.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return


@contextlib.contextmanager
def serving() -> Iterator[Receiver]:
    """A receiver on a free port for the duration of the block."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
