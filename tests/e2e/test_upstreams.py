"""Pull-through reads (UPSTREAMS) on the edge at $EDGE_MIRROR, against real upstreams:

  basic.test    docker-registry 2.8 on its own filesystem with htpasswd (Basic credentials; it
                streams blob bytes itself); also the default upstream, for unprefixed names
  token.test    docker-registry with Docker token authentication, its token service an edge (the
                bearer token dance with the edge's credentials; blobs redirect to presigned URLs)
  edge.test     an edge itself, without credentials (anonymous tokens, as Docker Hub's)
  faulty.test, limited.test   tests/support/fake-upstream.py in front of basic.test, misbehaving
                when told to (429s, tampered manifests, a token realm on a foreign host)

and the edge at $EDGE_FRONT with STORAGE_BACKEND=none, in front of the origin's API.

Real clients (skopeo, podman, through a registries.conf mirror too) and HTTP-level requests as
containerd and Docker's registry-mirrors send them. Digests must be the upstream's own.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import OCI_ACCEPT, UPSTREAM_BASIC_AUTH, Registry, admin, edge_registry, env, error_codes, fake

BASIC = UPSTREAM_BASIC_AUTH


@pytest.fixture(scope="module")
def mirror() -> Registry:
    return edge_registry("edge-mirror", "EDGE_MIRROR", tls=False)



def raw_digest(reg: Registry, ref: str) -> str:
    """The sha256 of the manifest bytes `reg` serves for `ref` (repo:tag), over HTTP."""
    repo, tag = ref.rsplit(":", 1)
    r = manifest(reg, repo, tag)
    assert r.status_code == 200, f"{reg.name} {ref}: {r.status_code} {r.text}"
    return "sha256:" + hashlib.sha256(r.content).hexdigest()


def skopeo_digest(reg: Registry, ref: str) -> str:
    """The sha256 of the manifest skopeo reads for `ref` at `reg` (a real client's view)."""
    user, password = reg.auth
    r = subprocess.run(["skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false",
                        "--creds", f"{user}:{password}", f"docker://{reg.addr}/{ref}"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return "sha256:" + hashlib.sha256(r.stdout).hexdigest()


def manifest(reg: Registry, repo: str, reference: str, **kw) -> requests.Response:
    return reg.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_ACCEPT}, **kw)


def warnings_of(resp: requests.Response) -> str:
    return resp.headers.get("Warning", "")


# --- real clients ------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", ["library/busybox:1", "multi/arch:latest", "team/app/service:v1",
                                 "docker/v2s2:1"])
def test_skopeo_pulls_through_a_basic_upstream_with_its_digests(mirror, upstream, ref, tmp_path):
    assert raw_digest(mirror, f"basic.test/{ref}") == raw_digest(upstream, ref)
    user, password = mirror.auth
    r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--all", "--src-tls-verify=false",
                        "--src-creds", f"{user}:{password}", f"docker://{mirror.addr}/basic.test/{ref}",
                        f"oci:{tmp_path / 'pulled'}:x"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_the_token_dance_with_credentials_and_anonymous(mirror, origin):
    # token.test: docker-registry wants a token from its token service, for the edge's user.
    origin_reg = Registry("origin", env("ORIGIN_TOKEN"), tls=False, auth=admin())
    assert skopeo_digest(mirror, "token.test/library/busybox:1") == skopeo_digest(origin_reg, "library/busybox:1")
    # Its blobs redirect to presigned storage URLs, which go to the client as they are.
    m = manifest(mirror, "token.test/library/busybox", "1").json()
    layer = m["layers"][0]["digest"]
    r = mirror.request("GET", f"/v2/token.test/library/busybox/blobs/{layer}")
    assert r.status_code == 307, r.text
    assert r.headers["Location"].startswith(env("S3_ENDPOINT")), r.headers["Location"]
    assert "X-Amz-Signature=" in r.headers["Location"]
    blob = requests.get(r.headers["Location"], timeout=30)
    assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer
    # distribution redirects a HEAD too: the size comes from where it leads.
    r = mirror.request("HEAD", f"/v2/token.test/library/busybox/blobs/{layer}")
    assert r.status_code == 200, r.headers
    assert int(r.headers["Content-Length"]) == len(blob.content)

    # edge.test: an edge that lets anyone pull library/*, asked anonymously (no credentials in
    # the entry): an anonymous token, as Docker Hub hands them out.
    tokens = edge_registry("edge-tokens", "EDGE_TOKENS", tls=False)
    r = tokens.request("PUT", "/api/v1/anonymous-pull", json={"repositories": ["library/*"]})
    assert r.status_code == 200, r.text
    try:
        assert skopeo_digest(mirror, "edge.test/library/busybox:1") == raw_digest(tokens, "library/busybox:1")
        r = manifest(mirror, "edge.test/team/app/service", "v1")
        assert r.status_code == 403, r.text
        assert error_codes(r) == ["DENIED"]
        assert "refused access to team/app/service" in r.json()["errors"][0]["message"]
    finally:
        tokens.request("PUT", "/api/v1/anonymous-pull", json={"repositories": []})


def test_blobs_a_registry_streams_come_through_untouched_with_ranges(mirror, upstream):
    m = manifest(mirror, "basic.test/library/busybox", "1").json()
    layer = m["layers"][0]
    path = f"/v2/basic.test/library/busybox/blobs/{layer['digest']}"
    r = mirror.request("GET", path)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == layer["size"]
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == layer["digest"]
    whole = r.content
    r = mirror.request("GET", path, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 100-199/{layer['size']}"
    assert r.content == whole[100:200]
    r = mirror.request("HEAD", path)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == layer["size"]
    assert r.headers["Docker-Content-Digest"] == layer["digest"]


def test_podman_pulls_by_prefix_and_through_a_registries_conf_mirror(mirror, upstream, tmp_path):
    short = Path(f"/tmp/re-mirror-{os.getpid()}")   # podman wants a short runroot
    user, password = mirror.auth
    # The primary location answers nothing: a pull that succeeds came from the mirror.
    conf = tmp_path / "registries.conf"
    conf.write_text(f"""
[[registry]]
prefix = "upstream.invalid"
location = "127.0.0.1:1"
insecure = true

[[registry.mirror]]
location = "{mirror.addr}/basic.test"
insecure = true
""")
    podman = ["podman", "--root", str(short / "root"), "--runroot", str(short / "run"),
              "--storage-driver", "vfs"]
    environment = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}

    def run(*args):
        r = subprocess.run([*podman, *args], capture_output=True, text=True, timeout=300, env=environment)
        assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r.stdout.strip()

    try:
        want = raw_digest(upstream, "team/app/service:v1")
        run("pull", "-q", "--tls-verify=false", "--creds", f"{user}:{password}",
            f"{mirror.addr}/basic.test/team/app/service:v1")
        assert run("image", "inspect", "--format", "{{.Digest}}",
                   f"{mirror.addr}/basic.test/team/app/service:v1") == want
        run("pull", "-q", "upstream.invalid/team/app/service:v1")
        assert run("image", "inspect", "--format", "{{.Digest}}",
                   "upstream.invalid/team/app/service:v1") == want
    finally:
        subprocess.run([*podman, "rmi", "-af"], capture_output=True, env=environment)
        subprocess.run(["rm", "-rf", str(short)], check=False)


def test_containerd_namespaces_and_docker_registry_mirrors(mirror, upstream):
    want = raw_digest(upstream, "library/busybox:1")
    # containerd, with the edge as a mirror host of basic.test: the unprefixed name and ?ns=.
    r = manifest(mirror, "library/busybox", "1?ns=basic.test")
    assert r.status_code == 200, r.text
    assert r.headers["OCI-Namespace"] == "basic.test"
    assert r.headers["Docker-Content-Digest"] == want
    layer = r.json()["layers"][0]["digest"]
    r = mirror.request("GET", f"/v2/library/busybox/blobs/{layer}?ns=basic.test")
    assert r.status_code == 200
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == layer
    # A registry no upstream serves: nothing (containerd then asks that registry itself).
    r = manifest(mirror, "library/busybox", "1?ns=quay.io")
    assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"]
    # Docker's registry-mirrors sends unprefixed names: the edge's own repositories first...
    own = manifest(mirror, "library/busybox", "1")
    assert own.status_code == 200
    assert own.headers["Docker-Content-Digest"] == raw_digest(
        edge_registry("edge", "EDGE_HTTP", tls=False), "library/busybox:1")
    # ...then the default upstream, for what only it has.
    r = manifest(mirror, "upstream/only", "v1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == raw_digest(upstream, "upstream/only:v1")
    # The catalog lists what the edge stores, not what it fetched.
    catalog = mirror.request("GET", "/v2/_catalog").json()["repositories"]
    assert "upstream/only" not in catalog and not any(n.startswith("basic.test") for n in catalog)


def test_containerd_pulls_through_the_edge_as_a_mirror_host(mirror, upstream):
    """Debian's containerd with `ctr images pull --hosts-dir`: the edge as the mirror host of
    basic.test, so containerd sends unprefixed names with ?ns=basic.test."""
    if shutil.which("containerd") is None or os.geteuid() != 0:
        pytest.skip("containerd needs root here: ?ns= is covered at the HTTP level above")
    base = Path(f"/tmp/re-ctrd-{os.getpid()}")
    hosts = base / "hosts" / "basic.test"
    hosts.mkdir(parents=True)
    # The registry itself is unreachable: what containerd pulls came through the edge.
    (hosts / "hosts.toml").write_text(f"""server = "https://basic.test.invalid"

[host."http://{mirror.addr}"]
  capabilities = ["pull", "resolve"]
""")
    sock = base / "containerd.sock"
    (base / "config.toml").write_text(f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
""")
    log = open(base / "containerd.log", "w")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        assert sock.exists(), (base / "containerd.log").read_text()
        user, password = mirror.auth
        ctr = ["ctr", "--address", str(sock), "--namespace", "registry-edge-test"]
        r = subprocess.run([*ctr, "images", "pull", "--hosts-dir", str(base / "hosts"),
                            "--user", f"{user}:{password}", "--snapshotter", "native",
                            "basic.test/library/busybox:1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([*ctr, "images", "ls"], capture_output=True, text=True, timeout=60)
        assert raw_digest(upstream, "library/busybox:1") in r.stdout, r.stdout
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def test_tags_and_referrers_through_an_upstream(mirror, upstream):
    r = mirror.request("GET", "/v2/basic.test/library/busybox/tags/list")
    assert r.status_code == 200
    assert r.json() == {"name": "basic.test/library/busybox", "tags": ["1", "a", "b", "c", "latest"]}
    digest = raw_digest(upstream, "library/busybox:1")
    # docker-registry 2.8 has no referrers API: none to tell, never a 404.
    r = mirror.request("GET", f"/v2/basic.test/library/busybox/referrers/{digest}")
    assert r.status_code == 200
    assert r.json()["manifests"] == []


def test_mirror_namespaces_are_read_only(mirror):
    for method, path in [("POST", "/v2/basic.test/library/busybox/blobs/uploads/"),
                         ("PUT", "/v2/basic.test/library/busybox/manifests/1"),
                         ("DELETE", "/v2/basic.test/library/busybox/manifests/1")]:
        r = mirror.request(method, path)
        assert r.status_code == 403, (method, r.text)
        assert error_codes(r) == ["DENIED"]
        assert "mirrors an upstream registry" in r.json()["errors"][0]["message"]


def test_anonymous_pull_by_pattern_covers_a_mirror(mirror):
    r = mirror.request("PUT", "/api/v1/anonymous-pull", json={"repositories": ["basic.test/library/*"]})
    assert r.status_code == 200, r.text
    try:
        r = manifest(mirror, "basic.test/library/busybox", "1", auth=None)
        assert r.status_code == 200, r.text
        r = manifest(mirror, "basic.test/team/app/service", "v1", auth=None)
        assert r.status_code == 401
    finally:
        mirror.request("PUT", "/api/v1/anonymous-pull", json={"repositories": []})


# --- fronting: no storage, every read from the origin's API ------------------------------------

@pytest.fixture(scope="module")
def front() -> Registry:
    return edge_registry("edge-front", "EDGE_FRONT", tls=False)


def test_an_edge_without_storage_fronts_the_origin(front, origin, tmp_path):
    for ref in ["library/busybox:1", "multi/arch:latest", "docker/v2s2:1"]:
        assert raw_digest(front, ref) == raw_digest(origin, ref), ref
    user, password = front.auth
    r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                        "--src-creds", f"{user}:{password}", f"docker://{front.addr}/team/app/service:v1",
                        f"oci:{tmp_path / 'pulled'}:x"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # Blobs: the origin's redirect to presigned storage, passed on.
    layer = manifest(front, "library/busybox", "1").json()["layers"][0]["digest"]
    r = front.request("GET", f"/v2/library/busybox/blobs/{layer}")
    assert r.status_code == 307 and "X-Amz-Signature=" in r.headers["Location"]
    # A push through the edge is read back at once, though the tag was kept.
    def push(src_repo: str, tag: str):
        m = manifest(front, src_repo, tag)
        assert m.status_code == 200
        body = m.json()
        for blob in [body["config"]] + body["layers"]:
            r = front.request("POST", f"/v2/fronted/moved/blobs/uploads/?mount={blob['digest']}&from={src_repo}")
            assert r.status_code == 201, r.text
        r = front.request("PUT", "/v2/fronted/moved/manifests/t", data=m.content,
                          headers={"Content-Type": m.headers["Content-Type"]})
        assert r.status_code == 201, r.text
        return m.headers["Docker-Content-Digest"]

    first = push("library/busybox", "1")
    assert manifest(front, "fronted/moved", "t").headers["Docker-Content-Digest"] == first
    second = push("docker/v2s2", "1")
    assert second != first
    assert manifest(front, "fronted/moved", "t").headers["Docker-Content-Digest"] == second


# --- faults ------------------------------------------------------------------------------------

def test_a_tampered_manifest_is_refused_and_not_kept(mirror, faulty):
    # Manifests come back with other bytes than the digest the upstream names for them.
    fake("mode?set=tamper")
    r = manifest(mirror, "faulty.test/multi/arch", "latest")
    assert r.status_code == 502, r.text
    assert error_codes(r) == ["UPSTREAM_ERROR"]
    assert "do not match that digest" in r.json()["errors"][0]["message"]
    # By digest too.
    digest = raw_digest(Registry("upstream", env("UPSTREAM_BASIC"), tls=False, auth=BASIC),
                        "multi/arch:latest")
    r = manifest(mirror, "faulty.test/multi/arch", digest)
    assert r.status_code == 502 and error_codes(r) == ["UPSTREAM_ERROR"], r.text
    # Nothing was kept: once the upstream behaves, the right bytes are served.
    fake("mode?set=pass")
    r = manifest(mirror, "faulty.test/multi/arch", "latest")
    assert r.status_code == 200
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == r.headers["Docker-Content-Digest"]


@pytest.mark.parametrize("mode,host", [("foreign", "127.0.0.2"), ("otherport", "127.0.0.1")])
def test_a_token_realm_elsewhere_gets_nothing(mirror, faulty, mode, host):
    # Another host, or another port of the upstream's own host: neither is the upstream.
    fake(f"mode?set={mode}")
    r = manifest(mirror, "faulty.test/library/busybox", "c")
    assert r.status_code == 502, r.text
    message = r.json()["errors"][0]["message"]
    assert "neither its own origin nor one of the entry's realm_hosts" in message
    assert host not in message and "127.0.0.1" not in message, "no host of the stack's reaches a client"
    assert fake("recorded") == [], "the realm received a request"
    assert any(line.startswith("GET /v2/library/busybox/manifests/c") for line in fake("log"))


def test_a_rate_limited_upstream_is_not_asked_before_retry_after(mirror, faulty):
    r = manifest(mirror, "limited.test/library/busybox", "1")
    assert r.status_code == 200
    assert warnings_of(r) == ""
    time.sleep(1.2)                      # past the tag's lifetime (1 s)
    fake("mode?set=429&retry_after=30")
    before = len(fake("log"))
    r = manifest(mirror, "limited.test/library/busybox", "1")
    assert r.status_code == 200
    assert warnings_of(r).startswith('299 - "') and "retry after 30 s" in warnings_of(r), warnings_of(r)
    assert len(fake("log")) == before + 1, "one HEAD, answered 429"
    time.sleep(1.2)
    r = manifest(mirror, "limited.test/library/busybox", "1")
    assert r.status_code == 200 and "may be stale" in warnings_of(r)
    r = manifest(mirror, "limited.test/library/busybox", "never-seen")
    assert r.status_code == 503
    assert error_codes(r) == ["UPSTREAM_UNAVAILABLE"]
    assert 1 <= int(r.headers["Retry-After"]) <= 30
    assert len(fake("log")) == before + 1, "nothing was sent before Retry-After had passed"


def lib(command: str) -> None:
    root = Path(__file__).resolve().parents[2]
    subprocess.run(["bash", "-c", f". scripts/lib.sh && {command}"], cwd=root, check=True,
                   timeout=120, env={**os.environ, "ORIGIN_STORAGE_DIR": env("UPSTREAM_BASIC_DIR"),
                                     "ORIGIN_HTPASSWD": env("UPSTREAM_BASIC_HTPASSWD")})


def test_a_stopped_upstream_serves_what_the_edge_knows(mirror, upstream):
    known = manifest(mirror, "basic.test/library/busybox", "a")
    assert known.status_code == 200
    digest = known.headers["Docker-Content-Digest"]
    port = upstream.addr.rsplit(":", 1)[1]
    lib("stop_part upstream-basic")
    try:
        time.sleep(2.2)                  # past the tag's lifetime (2 s)
        r = manifest(mirror, "basic.test/library/busybox", "a")
        assert r.status_code == 200, r.text
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.content == known.content
        assert "is unreachable" in warnings_of(r) and "may be stale" in warnings_of(r), warnings_of(r)
        r = manifest(mirror, "basic.test/library/busybox", digest)
        assert r.status_code == 200, "a manifest by digest is immutable: served from the edge"
        r = manifest(mirror, "basic.test/library/busybox", "never-seen")
        assert r.status_code == 502
        assert error_codes(r) == ["UPSTREAM_UNREACHABLE"]
        assert "basic.test" in r.json()["errors"][0]["message"]
    finally:
        lib(f"start_origin upstream-basic {port}")
    time.sleep(2.2)                      # the stale answer stands for the tag's lifetime
    r = manifest(mirror, "basic.test/library/busybox", "a")
    assert r.status_code == 200 and warnings_of(r) == ""
