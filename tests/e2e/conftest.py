"""End-to-end tests against the running local stack: the release WASM on workerd (Miniflare), the
origin registry (docker-registry 2.8, S3 driver) and the S3 server. `scripts/test` starts the stack,
pushes the fixtures to the origin, and runs pytest with these set:

  ORIGIN          host:port of the origin (plain HTTP)
  EDGE_HTTP       host:port of the edge reading S3, plain HTTP
  EDGE_S3_TLS     host:port of the edge reading S3, HTTPS (self-signed)
  EDGE_R2_TLS     host:port of the edge reading the R2 binding, HTTPS (self-signed)
  EDGE_WRANGLER   host:port of the edge under `wrangler dev` (wrangler.toml + overrides), HTTP
  S3_ENDPOINT     the S3 server, where presigned blob URLs must point
"""
import http.client
import json
import os
import ssl
import subprocess
from dataclasses import dataclass

import pytest
import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the end-to-end tests through scripts/test")
    return value


@dataclass
class Registry:
    """A registry under test: where it listens and how to talk to it."""

    name: str
    addr: str
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr}"

    def request(self, method: str, path: str, headers=None, **kw) -> requests.Response:
        return requests.request(method, self.url + path, headers=headers or {}, verify=False,
                                allow_redirects=False, timeout=30, **kw)

    def raw(self, method: str, path: str) -> tuple[int, bytes]:
        """A request with the path sent exactly as given (no client-side normalisation)."""
        if self.tls:
            conn = http.client.HTTPSConnection(self.addr, timeout=30,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(self.addr, timeout=30)
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body

    def skopeo(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                              text=True, timeout=300)


@pytest.fixture(scope="session")
def origin() -> Registry:
    return Registry("origin", env("ORIGIN"), tls=False)


@pytest.fixture(scope="session")
def edge_http() -> Registry:
    return Registry("edge-s3-http", env("EDGE_HTTP"), tls=False)


@pytest.fixture(scope="session")
def edge_tls() -> Registry:
    """The S3 edge over HTTPS: for skopeo and podman, which try HTTPS first."""
    return Registry("edge-s3", env("EDGE_S3_TLS"), tls=True)


# The shared suite runs against every storage backend, as distribution's driver test suites do.
@pytest.fixture(scope="session", params=["s3", "r2"])
def edge(request) -> Registry:
    return Registry(f"edge-{request.param}", env(f"EDGE_{request.param.upper()}_TLS"), tls=True)


def error_codes(resp: requests.Response) -> list[str]:
    return [e["code"] for e in json.loads(resp.content)["errors"]]
