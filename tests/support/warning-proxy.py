"""An origin that warns: forwards every request to a registry and adds registry warnings (and a
warning of another kind) to each answer, as a registry deprecating a repository would.

  warning-proxy.py PORT UPSTREAM_HOST:PORT     prints "listening" once it accepts"""
import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WARNINGS = ['299 - "this repository is deprecated"', '299 - "pushes here end in 2027"',
            '199 proxy "not a registry warning"']
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ""

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def forward(self) -> None:
        body = self.body()
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        for warning in WARNINGS:
            self.send_header("Warning", warning)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write("%s %s\n" % (self.command, self.path))


def main() -> None:
    Proxy.upstream = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
