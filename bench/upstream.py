"""A local stand-in for the SendGrid API: answers every mail send with 202, as SendGrid does.

Run as ``python -m bench.upstream PORT``; it serves until killed. Both the
guard and the direct sends of the proxy benchmark talk to this one process.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _SendGrid(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.send_header("X-Message-Id", "bench")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    """Serve on 127.0.0.1 at the port given."""
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _SendGrid)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
