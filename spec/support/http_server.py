#!/usr/bin/env python3
"""Test tooling only: a small threaded HTTP server for the aegis.http specs.

Listens on 127.0.0.1 and on 127.0.0.2 ("another host", still loopback), and
for each --tls CERT KEY also on 127.0.0.1 over TLS.  Prints one JSON line with the
ports, then serves until /_quit, until its parent process goes away, or after
--lifetime seconds.  Every request but /_log and /_clear is logged, with the number of requests
of its group (query parameter g, else its path) in flight when it arrived.

Routes (query parameters in brackets):
  /echo                 200, JSON {method, path, headers, body, host}
  /status/N             status N [h=Name:Value ...] [body=text]
  /sse                  SSE stream of n events [n, delay_ms, event, size=
                        bytes of data per event instead of {"i": n}]
  /raw                  raw body chunks [c=base64url ..., delay_ms,
                        frame=chunked|close, cut=1 (no final chunk), status,
                        ct=content type]
  /trickle              n bytes at one per interval_ms [n, interval_ms]
  /huge                 n bytes [n, cl=0 for chunked]
  /redirect             [to=URL, code=302]
  /reset                reads the request, then resets the connection
  /sleep                answers after ms milliseconds [ms]
  /garbage              answers with bytes that are not HTTP
  /_log  /_clear  /_quit
An absolute request URI (a proxy request) is answered 200 with
{"proxied": true, "url": ...} and logged with proxied=true.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG = []
LOCK = threading.Lock()
INFLIGHT = {}  # group (query g=, else path) -> requests in flight


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, *args):  # quiet
        pass

    def _headers(self):
        return {k.lower(): v for k, v in self.headers.items()}

    def _read_body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body=b"", headers=None, ctype="application/json"):
        self.send_response(status)
        for k, v in (headers or []):
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _handle(self):
        u = urlsplit(self.path)
        group = parse_qs(u.query).get("g", [u.path])[0]
        with LOCK:
            INFLIGHT[group] = INFLIGHT.get(group, 0) + 1
            self.inflight = INFLIGHT[group]
        try:
            self._route()
        finally:
            with LOCK:
                INFLIGHT[group] -= 1

    def _route(self):
        body = self._read_body()
        proxied = self.path.startswith("http://") or self.path.startswith("https://")
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        arg = lambda k, d=None: q.get(k, [d])[0]
        if u.path not in ("/_log", "/_clear"):
            with LOCK:
                LOG.append({"method": self.command, "path": u.path,
                            "host": self.server.server_address[0],
                            "headers": self._headers(), "proxied": proxied,
                            "inflight": self.inflight, "peer": self.client_address[1],
                            "t": time.monotonic()})
        if proxied:
            return self._send(200, json.dumps({"proxied": True, "url": self.path}).encode())
        p = u.path
        if p == "/_log":
            with LOCK:
                return self._send(200, json.dumps(LOG).encode())
        if p == "/_clear":
            with LOCK:
                LOG.clear()
            return self._send(200, b"{}")
        if p == "/_quit":
            self._send(200, b"{}")
            threading.Timer(0.05, lambda: os._exit(0)).start()
            return
        if p == "/echo":
            out = {"method": self.command, "path": u.path, "query": u.query,
                   "headers": self._headers(), "body": body.decode("latin-1"),
                   "host": self.server.server_address[0]}
            return self._send(200, json.dumps(out).encode())
        if p.startswith("/status/"):
            hs = [h.split(":", 1) for h in q.get("h", [])]
            text = arg("body", "{}").encode()
            return self._send(int(p[len("/status/"):]), text, [(k, v.strip()) for k, v in hs])
        if p == "/sse":
            n, delay = int(arg("n", "3")), int(arg("delay_ms", "0")) / 1000
            event, size = arg("event"), int(arg("size", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                data = ("x" * size) if size else '{"i": %d}' % (i + 1)
                ev = (("event: %s\n" % event) if event else "") + "data: %s\n\n" % data
                self._chunk(ev.encode())
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
            return
        if p == "/raw":
            chunks = [base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)) for c in q.get("c", [])]
            delay = int(arg("delay_ms", "0")) / 1000
            frame = arg("frame", "chunked")
            self.send_response(int(arg("status", "200")))
            self.send_header("Content-Type", arg("ct", "text/event-stream"))
            if frame == "close":
                self.send_header("Connection", "close")
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in chunks:
                if frame == "close":
                    self.wfile.write(c)
                    self.wfile.flush()
                else:
                    self._chunk(c)
                if delay:
                    time.sleep(delay)
            if frame == "close" or arg("cut"):
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                return
            self.wfile.write(b"0\r\n\r\n")
            return
        if p == "/trickle":
            n, interval = int(arg("n", "100")), int(arg("interval_ms", "1000")) / 1000
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            try:
                for _ in range(n):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:
                pass
            return
        if p == "/huge":
            n, cl = int(arg("n", "1048576")), arg("cl", "1") == "1"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if cl:
                self.send_header("Content-Length", str(n))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 65536
            sent = 0
            try:
                while sent < n:
                    piece = block[: min(len(block), n - sent)]
                    if cl:
                        self.wfile.write(piece)
                    else:
                        self._chunk(piece)
                    sent += len(piece)
                if not cl:
                    self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True
            return
        if p == "/redirect":
            return self._send(int(arg("code", "302")), b"", [("Location", arg("to", "/echo"))], None)
        if p == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if p == "/garbage":
            self.wfile.write(b"SPEAKS NO HTTP\r\n\r\n")
            self.close_connection = True
            return
        if p == "/sleep":
            time.sleep(int(arg("ms", "1000")) / 1000)
            return self._send(200, b"ok", ctype="text/plain")
        return self._send(404, b'{"error": "no route"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


def serve(host, tls=None):
    srv = Server((host, 0), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.handle_error = lambda *a: None  # refused handshakes are expected
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), action="append", default=[])
    ap.add_argument("--lifetime", type=float, default=600)
    a = ap.parse_args()
    ports = {"port": serve("127.0.0.1"), "port2": serve("127.0.0.2")}
    ports["tls_ports"] = [serve("127.0.0.1", pair) for pair in a.tls]
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()
    parent, end = os.getppid(), time.monotonic() + a.lifetime
    while os.getppid() == parent and time.monotonic() < end:
        time.sleep(0.2)
    os._exit(0)


if __name__ == "__main__":
    main()
