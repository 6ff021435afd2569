"""A webhook receiver for the tests: records every POST and answers as it is told.

  webhook-receiver.py PORT      prints "listening" once it accepts

  POST <any path>                        recorded: {"path", "headers", "body"}; answered 200
                                         unless told otherwise
  GET /_control/fail?times=N&status=S    answer the next N deliveries with S (default 503)
  GET /_control/fail?times=-1&status=S   answer every delivery with S
  GET /_control/log                      the recorded deliveries, a JSON list
  GET /_control/reset                    forget them, answer 200 again
"""
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"fail_times": 0, "fail_status": 503, "log": []}


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        with lock:
            if url.path == "/_control/fail":
                state["fail_times"] = int(query.get("times", ["1"])[0])
                state["fail_status"] = int(query.get("status", ["503"])[0])
                body = {"failing": state["fail_times"]}
            elif url.path == "/_control/log":
                body = state["log"]
            elif url.path == "/_control/reset":
                state.update(fail_times=0, fail_status=503, log=[])
                body = {}
            else:
                return self.answer(404, b"{}")
        self.answer(200, json.dumps(body).encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with lock:
            failing = state["fail_times"] != 0
            status = state["fail_status"] if failing else 200
            if state["fail_times"] > 0:
                state["fail_times"] -= 1
            state["log"].append({
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "answered": status,
            })
        self.answer(status, b'{"received": true}' if status == 200 else b'{"error": "told to fail"}')


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
