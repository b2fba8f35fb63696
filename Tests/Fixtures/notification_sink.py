#!/usr/bin/env python3
"""Local sinks for the notification tests (Tests/ArcaTesting/NotificationSink.swift).

An HTTP listener that answers POSTs and an SMTP server (aiosmtpd, PyPI),
both on 127.0.0.1, writing each request or message received as one JSON
file into --dir: http-<n>.json {"path", "headers", "body"} and
mail-<n>.json {"from", "to", "data"}. The first --fail-first HTTP requests
are answered 500 (to test retries); they are recorded too, as http-<n>.json
with "status": 500. A file "ready" appears once both listen.

Usage: notification_sink.py --dir DIR --http-port P --smtp-port Q [--fail-first N]
"""
import argparse
import http.server
import itertools
import json
import os
import threading
import time

from aiosmtpd.controller import Controller

parser = argparse.ArgumentParser()
parser.add_argument("--dir", required=True)
parser.add_argument("--http-port", type=int, required=True)
parser.add_argument("--smtp-port", type=int, required=True)
parser.add_argument("--fail-first", type=int, default=0)
arguments = parser.parse_args()

counter = itertools.count(1)
lock = threading.Lock()


def record(prefix, content):
    """Writes content as <prefix>-<n>.json atomically (a reader never sees half a file)."""
    with lock:
        number = next(counter)
    path = os.path.join(arguments.dir, f"{prefix}-{number}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(content, handle)
    os.rename(path + ".tmp", path)


http_requests = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        status = 500 if next(http_requests) <= arguments.fail_first else 200
        record("http", {"path": self.path, "headers": dict(self.headers), "body": body, "status": status})
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class MailHandler:
    async def handle_DATA(self, server, session, envelope):
        record("mail", {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
        })
        return "250 OK"


server = http.server.ThreadingHTTPServer(("127.0.0.1", arguments.http_port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
controller = Controller(MailHandler(), hostname="127.0.0.1", port=arguments.smtp_port)
controller.start()
with open(os.path.join(arguments.dir, "ready"), "w") as handle:
    handle.write("ready")
while True:
    time.sleep(3600)
