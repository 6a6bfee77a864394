"""A minimal local JSON-over-HTTP server for tests that fake a vision model endpoint.

``serve(fake)`` runs it on 127.0.0.1 (an ephemeral port) for an object with ``status``, ``requests``,
``url`` and ``reply(path) -> dict``: every POST is recorded as (path, lower-cased headers, body) and
answered with ``reply`` (or an error body when ``status`` is not 200).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(fake: Any) -> Iterator[Any]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            payload = fake.reply(self.path) if fake.status == 200 else {"error": {"message": "boom"}}
            data = json.dumps(payload).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
