"""A real HTTP server on 127.0.0.1 answering from a script, for fault tests."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """Each request takes the next step of ``script``; the last step repeats.

    Steps: ("status", code) | ("hang", seconds) | ("truncate", body) | ("file", body, etag)
    where a ``file`` step answers 304 when the request's If-None-Match is its ETag."""

    def __init__(self, script: list[tuple]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                step = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                server.requests.append({"step": step[0], "headers": dict(self.headers.items())})
                kind = step[0]
                try:
                    if kind == "status":
                        body = b"erreur interne"
                        self.send_response(step[1])
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    elif kind == "hang":
                        server.released.wait(step[1])       # longer than the client's timeout
                        self.close_connection = True
                    elif kind == "truncate":
                        body = step[1]
                        self.send_response(200)
                        self.send_header("Content-Type", "text/csv")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                    elif kind == "file":
                        body, etag = step[1], step[2]
                        if etag and self.headers.get("If-None-Match") == etag:
                            self.send_response(304)
                            self.send_header("ETag", etag)
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        self.send_response(200)
                        self.send_header("Content-Type", "text/csv; charset=utf-8")
                        if etag:
                            self.send_header("ETag", etag)
                            self.send_header("Last-Modified", "Mon, 03 Mar 2025 08:00:00 GMT")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/exports/indicateurs.csv"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
