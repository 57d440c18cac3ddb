"""The lifecycle every fake service shares: an HTTP server on 127.0.0.1 (a free port) answering
in a daemon thread, and a clean shutdown. Each fake keeps its own handler and API."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def bind_locally(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    return httpd


def serve_in_background(httpd: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return thread


def serve_locally(handler: type[BaseHTTPRequestHandler], name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = bind_locally(handler)
    return httpd, serve_in_background(httpd, name)


def shut_down(httpd: ThreadingHTTPServer | None) -> None:
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
