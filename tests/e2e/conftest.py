"""End-to-end tests against the running local stack: the release WASM on workerd (Miniflare), the
origin registry (docker-registry 2.8, S3 driver) and the S3 server. `scripts/test` starts the stack,
pushes the fixtures to the origin, and runs pytest with these set:

  ORIGIN          host:port of the origin (plain HTTP)
  EDGE_HTTP       host:port of the edge reading S3, plain HTTP
  EDGE_S3_TLS     host:port of the edge reading S3, HTTPS (self-signed)
  EDGE_R2_TLS     host:port of the edge reading the R2 binding, HTTPS (self-signed)
  EDGE_WRANGLER   host:port of the edge under `wrangler dev` (wrangler.toml + overrides), HTTP
  EDGE_AUTHZ      host:port of the edge the auth tests configure (HTTPS)
  REGISTRY_EDGE_CLI   the management command line (target/debug/registry-edge)
  S3_ENDPOINT     the S3 server, where presigned blob URLs must point
  ADMIN_USER, ADMIN_PASSWORD   the edges' admin user (every edge request signs in as the admin
                  unless a test says otherwise)
  REGISTRY_AUTH_FILE   the same credentials for skopeo and podman
"""
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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
    # (user, password) sent as Basic credentials on every request; None for an open registry.
    auth: tuple[str, str] | None = None
    http: requests.Session = field(init=False, repr=False)

    def __post_init__(self):
        # For requests to the registry's own URLs (upload Locations): signed in, no TLS checks.
        self.http = requests.Session()
        self.http.auth = self.auth
        self.http.verify = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr}"

    def request(self, method: str, path: str, headers=None, **kw) -> requests.Response:
        kw.setdefault("auth", self.auth)
        return requests.request(method, self.url + path, headers=headers or {}, verify=False,
                                allow_redirects=False, timeout=30, **kw)

    def raw(self, method: str, path: str) -> tuple[int, bytes]:
        """A request with the path sent exactly as given (no client-side normalisation)."""
        if self.tls:
            conn = http.client.HTTPSConnection(self.addr, timeout=30,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(self.addr, timeout=30)
        headers = {}
        if self.auth:
            headers["Authorization"] = requests.auth._basic_auth_str(*self.auth)
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body

    def skopeo(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                              text=True, timeout=300)


def admin() -> tuple[str, str]:
    return os.environ.get("ADMIN_USER", "admin"), env("ADMIN_PASSWORD")


def edge_registry(name: str, var: str, tls: bool) -> Registry:
    """The edge at $var, signed in as its admin."""
    return Registry(name, env(var), tls=tls, auth=admin())


@pytest.fixture(scope="session")
def origin() -> Registry:
    return Registry("origin", env("ORIGIN"), tls=False)


@pytest.fixture(scope="session")
def edge_http() -> Registry:
    return edge_registry("edge-s3-http", "EDGE_HTTP", tls=False)


@pytest.fixture(scope="session")
def edge_tls() -> Registry:
    """The S3 edge over HTTPS: for skopeo and podman, which try HTTPS first."""
    return edge_registry("edge-s3", "EDGE_S3_TLS", tls=True)


# The shared suite runs against every storage backend, as distribution's driver test suites do.
@pytest.fixture(scope="session", params=["s3", "r2"])
def edge(request) -> Registry:
    return edge_registry(f"edge-{request.param}", f"EDGE_{request.param.upper()}_TLS", tls=True)


# --- upstream registries (the pull-through and mirror tests) ---------------------------------

# Every manifest type a pull accepts.
OCI_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
# The htpasswd upstream's puller.
UPSTREAM_BASIC_AUTH = ("puller", "pull-secret")


@pytest.fixture(scope="session")
def upstream() -> Registry:
    """The docker-registry on its own filesystem with htpasswd, at $UPSTREAM_BASIC."""
    return Registry("upstream-basic", env("UPSTREAM_BASIC"), tls=False, auth=UPSTREAM_BASIC_AUTH)


def fake(path: str):
    """A control request to the misbehaving upstream at $FAKE_UPSTREAM
    (tests/support/fake-upstream.py): `mode?set=...`, `log`, `recorded`, `reset`."""
    r = requests.get(f"http://{env('FAKE_UPSTREAM')}/_control/{path}", timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def faulty():
    """The misbehaving upstream, reset before and after."""
    fake("reset")
    yield
    fake("reset")


MIB = 1 << 20
_BLOCK = os.urandom(MIB)


class Generated:
    """`count_mib` MiB from `offset_mib` on, generated as sent (each MiB a random block, the same
    for the whole run, with its index in front); its length is known, so it goes out with a
    Content-Length."""

    def __init__(self, offset_mib: int, count_mib: int):
        self.offset, self.count = offset_mib, count_mib

    def __len__(self) -> int:
        return self.count * MIB

    def __iter__(self):
        for i in range(self.offset, self.offset + self.count):
            yield i.to_bytes(8, "big") + _BLOCK[8:]


def generated_digest(count_mib: int) -> str:
    """The digest of the first `count_mib` generated MiB."""
    h = hashlib.sha256()
    for part in Generated(0, count_mib):
        h.update(part)
    return "sha256:" + h.hexdigest()


def peak_rss_mib(name: str) -> float:
    """The peak RSS (VmHWM) of the Miniflare edge `name`'s workerd, in MiB."""
    pid = Path(env("STACK_DIR"), f"{name}.workerd-pid").read_text().split()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def error_codes(resp: requests.Response) -> list[str]:
    return [e["code"] for e in json.loads(resp.content)["errors"]]


def wait_for(what: str, check, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds} s: {what}")


def cli(reg: Registry, *args: str, user=None, password=None, check=True, timeout=60) -> subprocess.CompletedProcess:
    user = user or admin()[0]
    password = password or admin()[1]
    r = subprocess.run([env("REGISTRY_EDGE_CLI"), "--url", reg.url, "--insecure", "--user", user,
                        *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "REGISTRY_EDGE_PASSWORD": password})
    if check:
        assert r.returncode == 0, f"registry-edge {' '.join(args)}: {r.stderr}"
    return r


def cli_json(reg: Registry, *args: str):
    return json.loads(cli(reg, *args).stdout)


def skopeo_push(edge: Registry, ref: str) -> str:
    """Pushes the fixture busybox image to `ref` at the edge; its manifest digest."""
    user, password = edge.auth
    images = Path(env("STACK_DIR"), "images")
    with tempfile.TemporaryDirectory() as tmp:
        digest_file = Path(tmp, "digest")
        r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                            "--dest-creds", f"{user}:{password}", "--digestfile", str(digest_file),
                            f"oci:{images / 'busybox'}:1", f"docker://{edge.addr}/{ref}"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return digest_file.read_text().strip()


def s3_env() -> dict:
    """The environment boto3 (and tests/support scripts) reach the stack's S3 server with."""
    return {**os.environ, "S3_BUCKET": "registry", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": os.environ.get("S3_ACCESS_KEY_ID", "registry-edge"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("S3_SECRET_ACCESS_KEY", "registry-edge-secret")}


def s3_client():
    """A boto3 client of the stack's S3 server (the bucket is `registry`)."""
    import boto3
    e = s3_env()
    return boto3.client("s3", endpoint_url=env("S3_ENDPOINT"), region_name="us-east-1",
                        aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"])


def holds_manifest(repo: str, root: str = "origin") -> bool:
    """Whether the repository holds a manifest in storage (a revision link)."""
    prefix = f"{root}/docker/registry/v2/repositories/{repo}/_manifests/revisions/sha256/"
    return s3_client().list_objects_v2(Bucket="registry", Prefix=prefix, MaxKeys=1)["KeyCount"] > 0
