#!/usr/bin/env python3
"""An upstream registry that misbehaves on request, for the pull-through tests.

  fake-upstream.py PORT UPSTREAM RECORDER_PORT

On PORT it forwards every request to UPSTREAM (host:port, plain HTTP; method, path, query and the
Authorization, Accept and Range headers), unless told to misbehave:

  GET /_control/mode?set=pass            forward (the default)
  GET /_control/mode?set=429&retry_after=N   answer every /v2/ request 429 with Retry-After: N
  GET /_control/mode?set=tamper          forward, but change the bytes of manifests (their
                                         Docker-Content-Digest left as it was)
  GET /_control/mode?set=down            close every /v2/ connection without an answer (stopped)
  GET /_control/mode?set=cut             forward, but send only the first half of every blob body
                                         (its Content-Length whole), then close the connection
  GET /_control/mode?set=foreign         answer every /v2/ request 401 with a Bearer challenge whose
                                         realm is on another host (127.0.0.2:RECORDER_PORT)
  GET /_control/mode?set=otherport       the same, with the realm on this host's RECORDER_PORT
  GET /_control/log                      the requests forwarded or answered since the last reset,
                                         as a JSON list of "METHOD /path" (control requests apart)
  GET /_control/recorded                 what the recorder received, as a JSON list of
                                         {"method", "path", "authorization"}
  GET /_control/reset                    empty both lists, mode pass

On 127.0.0.2:RECORDER_PORT and 127.0.0.1:RECORDER_PORT it records every request and answers a token, as a token service on a foreign
host would: a request arriving there is what a credential leak looks like.
"""
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, RECORDER_PORT = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
state = {"mode": "pass", "retry_after": "30", "log": [], "recorded": []}


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status: int, body: bytes = b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class Proxy(Quiet):
    def control(self, url):
        query = urllib.parse.parse_qs(url.query)
        with lock:
            if url.path == "/_control/mode":
                state["mode"] = query["set"][0]
                state["retry_after"] = query.get("retry_after", ["30"])[0]
                body = {"mode": state["mode"]}
            elif url.path == "/_control/log":
                body = list(state["log"])
            elif url.path == "/_control/recorded":
                body = list(state["recorded"])
            elif url.path == "/_control/reset":
                state.update(mode="pass", log=[], recorded=[])
                body = {"mode": "pass"}
            else:
                return self.answer(404)
        self.answer(200, json.dumps(body).encode(), [("Content-Type", "application/json")])

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_control/"):
            return self.control(url)
        with lock:
            state["log"].append(f"{self.command} {url.path}")
            mode, retry_after = state["mode"], state["retry_after"]
        if mode == "down" and url.path.startswith("/v2/"):
            self.close_connection = True
            return
        if mode == "429" and url.path.startswith("/v2/"):
            return self.answer(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                               [("Retry-After", retry_after), ("Content-Type", "application/json")])
        if mode in ("foreign", "otherport") and url.path.startswith("/v2/"):
            host = "127.0.0.2" if mode == "foreign" else "127.0.0.1"
            realm = f"http://{host}:{RECORDER_PORT}/token"
            return self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}',
                               [("WWW-Authenticate", f'Bearer realm="{realm}",service="fake"'),
                                ("Content-Type", "application/json")])
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "accept", "range")}
        conn = http.client.HTTPConnection(UPSTREAM, timeout=30)
        try:
            conn.request(self.command, self.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as e:
            return self.answer(502, str(e).encode())
        finally:
            conn.close()
        tampered = (mode == "tamper" and self.command == "GET"
                    and "/manifests/" in url.path and resp.status == 200)
        if tampered:
            body = body.replace(b"{", b"{ ", 1)
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.send_response(resp.status)
        for k, v in out:
            self.send_header(k, v)
        length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(body))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command == "HEAD":
            return
        if mode == "cut" and "/blobs/" in url.path and resp.status in (200, 206) and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with lock:
                state["log"].append(f"CUT {url.path}")
            return
        self.wfile.write(body)

    do_GET = do_HEAD = handle_any


class Recorder(Quiet):
    def handle_any(self):
        with lock:
            state["recorded"].append({"method": self.command, "path": self.path,
                                      "authorization": self.headers.get("Authorization")})
        self.answer(200, b'{"token": "leaked", "expires_in": 300}', [("Content-Type", "application/json")])

    do_GET = do_HEAD = do_POST = handle_any


def main():
    proxy = ThreadingHTTPServer(("127.0.0.1", PORT), Proxy)
    for host in ("127.0.0.2", "127.0.0.1"):
        recorder = ThreadingHTTPServer((host, RECORDER_PORT), Recorder)
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
    print(f"listening on {PORT} (recorder on {RECORDER_PORT})", flush=True)
    proxy.serve_forever()


if __name__ == "__main__":
    main()
