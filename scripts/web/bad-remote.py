#!/usr/bin/env python3
"""A remote that answers every request with 200 and a body that is not our protocol (an HTML
page), with CORS headers for any origin: the browser tests' "bad remote answer".

    python3 scripts/web/bad-remote.py PORT_FILE

Binds 127.0.0.1 on a free port and writes the port to PORT_FILE once listening.
"""
import http.server
import sys

BODY = b"<html><body>maintenance page, not JSON</body></html>"


class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST")
        self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = do_OPTIONS = _answer

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
