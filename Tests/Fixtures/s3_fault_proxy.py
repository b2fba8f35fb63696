#!/usr/bin/env python3
"""An HTTP proxy in front of an S3-compatible server that injects faults, for
Arca's storage-fault tests: the real server keeps the state, the proxy lies
about some answers.

    s3_fault_proxy.py --listen PORT --upstream http://127.0.0.1:PORT
                      [--fail-part N] [--fail-put-suffix SUFFIX] [--fail-deletes]
                      [--cut-gets N] [--ignore-conditions] [--lose-conditional-answers N]
                      [--refuse-conditional-writes]

--fail-part N answers every UploadPart request for part N with a 500
InternalError, without forwarding it; --fail-put-suffix SUFFIX does the same
for every PUT of a key ending in SUFFIX (".md5": the checksum sidecars);
--fail-deletes does the same for every DeleteObject and DeleteObjects.
--cut-gets N sends only the first half of the first N GET answers larger
than 1 MiB (announcing their whole length) and then drops the connection.
--ignore-conditions forwards writes without their If-None-Match and
If-Match headers: a store that ignores conditional writes.
--lose-conditional-answers N forwards the first N conditional writes (those
with If-None-Match) and then drops the connection without answering: a
write that succeeded although its client never heard so.
--refuse-conditional-writes answers every conditional write with 412
PreconditionFailed, without forwarding it: another writer's object
appeared under the name between the client's look and its write.
Everything else is forwarded as is.
Prints "ready" on stdout once it listens.
"""
import argparse
import http.client
import http.server
import sys
import threading
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--fail-part", type=int)
    parser.add_argument("--fail-put-suffix")
    parser.add_argument("--fail-deletes", action="store_true")
    parser.add_argument("--cut-gets", type=int, default=0)
    parser.add_argument("--ignore-conditions", action="store_true")
    parser.add_argument("--lose-conditional-answers", type=int, default=0)
    parser.add_argument("--refuse-conditional-writes", action="store_true")
    args = parser.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    cuts = {"left": args.cut_gets, "answers": args.lose_conditional_answers}
    cuts_lock = threading.Lock()

    def take(counter):
        with cuts_lock:
            if cuts[counter] <= 0:
                return False
            cuts[counter] -= 1
            return True

    def take_cut():
        return take("left")

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(target.query, keep_blank_values=True)
            failed_part = args.fail_part is not None and query.get("partNumber") == [str(args.fail_part)]
            failed_key = args.fail_put_suffix is not None and target.path.endswith(args.fail_put_suffix)
            failed_delete = args.fail_deletes and (self.command == "DELETE" or (self.command == "POST" and "delete" in query))
            refused = args.refuse_conditional_writes and self.headers.get("If-None-Match") is not None
            if refused:
                error = b"<Error><Code>PreconditionFailed</Code><Message>injected by s3_fault_proxy</Message></Error>"
                self.send_response(412)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            if (self.command == "PUT" and (failed_part or failed_key)) or failed_delete:
                error = b"<Error><Code>InternalError</Code><Message>injected by s3_fault_proxy</Message></Error>"
                self.send_response(500)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            conditional = self.headers.get("If-None-Match") is not None
            ignored = ("connection",) + (("if-none-match", "if-match") if args.ignore_conditions else ())
            headers = {name: value for name, value in self.headers.items() if name.lower() not in ignored}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if conditional and take("answers"):
                # Done upstream; the client hears nothing.
                self.close_connection = True
                connection.close()
                return
            self.send_response(response.status)
            # A HEAD answer's length is the object's, not of the (empty) payload.
            dropped = ("transfer-encoding", "connection") + (() if self.command == "HEAD" else ("content-length",))
            for name, value in response.getheaders():
                if name.lower() not in dropped:
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command == "GET" and len(payload) > 1 << 20 and take_cut():
                self.wfile.write(payload[:len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                connection.close()
                return
            if self.command != "HEAD":
                self.wfile.write(payload)
            connection.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.listen), Proxy)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
