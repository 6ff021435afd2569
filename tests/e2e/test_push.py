"""Writes through the edge alone: real clients push through it and pull back through it with
identical digests; uploads driven at the HTTP level; the same write sequences against the origin and
through the edge compared."""
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import edge_registry, env, error_codes, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

SUPPORT = Path(__file__).resolve().parents[1] / "support"
IMAGES = Path(os.environ.get("FIXTURES_DIR", Path(os.environ.get("STACK_DIR", ".stack")) / "images"))
OCI = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([OCI, "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(*args: str, env=None) -> str:
    r = subprocess.run(args, capture_output=True, text=True, timeout=300,
                       env=None if env is None else {**os.environ, **env})
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stderr}"
    return r.stdout


def digest_at(reg, repo: str, ref: str) -> str:
    r = reg.request("HEAD", f"/v2/{repo}/manifests/{ref}", {"Accept": ACCEPT})
    assert r.status_code == 200, (reg.name, repo, ref, r.status_code)
    return r.headers["Docker-Content-Digest"]


def test_skopeo_copy_all_through_the_edge(edge_tls, origin, tmp_path):
    source = sha256(run("skopeo", "inspect", "--raw", f"oci:{IMAGES}/multi:latest").encode())
    run("skopeo", "--insecure-policy", "copy", "--all", "--dest-tls-verify=false",
        f"oci:{IMAGES}/multi:latest", f"docker://{edge_tls.addr}/pushed/multi:latest")
    assert digest_at(edge_tls, "pushed/multi", "latest") == source
    assert digest_at(origin, "pushed/multi", "latest") == source
    out = tmp_path / "back"
    run("skopeo", "--insecure-policy", "copy", "--all", "--src-tls-verify=false",
        f"docker://{edge_tls.addr}/pushed/multi:latest", f"dir:{out}")
    assert sha256((out / "manifest.json").read_bytes()) == source


def test_skopeo_docker_schema2_through_the_edge(edge_tls, tmp_path):
    digest_file = tmp_path / "digest"
    run("skopeo", "--insecure-policy", "copy", "--format", "v2s2", "--dest-tls-verify=false",
        "--digestfile", str(digest_file), f"oci:{IMAGES}/busybox:1",
        f"docker://{edge_tls.addr}/pushed/v2s2:1")
    pushed = digest_file.read_text().strip()
    r = edge_tls.request("GET", "/v2/pushed/v2s2/manifests/1", {"Accept": ACCEPT})
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert r.headers["Docker-Content-Digest"] == pushed == sha256(r.content)


def test_podman_push_and_pull_through_the_edge(edge_tls, tmp_path):
    # podman names an oci: source after its path, so the layout must live at a plain path, and
    # its run root path must be short.
    layout = tmp_path / "layout"
    shutil.copytree(IMAGES / "busybox", layout)
    short = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
    podman = ["podman", "--root", str(short / "root"), "--runroot", str(short / "run"),
              "--storage-driver", "vfs"]
    image_id = run(*podman, "pull", "-q", f"oci:{layout}:1").strip().splitlines()[-1]
    run(*podman, "push", "--tls-verify=false", image_id,
        f"docker://{edge_tls.addr}/pushed/podman:1")
    run(*podman, "rmi", "-f", image_id)
    run(*podman, "pull", "-q", "--tls-verify=false", f"{edge_tls.addr}/pushed/podman:1")
    assert image_id in run(*podman, "images", "-q", "--no-trunc")
    run(*podman, "rmi", "-af")
    shutil.rmtree(short, ignore_errors=True)


def test_oras_artifact_through_the_edge(edge_http, tmp_path):
    python = sys.executable
    user, password = edge_http.auth
    run(python, str(SUPPORT / "push_artifact.py"), edge_http.addr, "pushed/sbom:v1",
        env={"REGISTRY_USER": user, "REGISTRY_PASSWORD": password})
    r = edge_http.request("GET", "/v2/pushed/sbom/manifests/v1", {"Accept": OCI})
    assert r.json()["artifactType"] == "application/vnd.example.sbom.v1+json"
    import oras.client
    client = oras.client.OrasClient(hostname=edge_http.addr, insecure=True)
    client.auth.set_basic_auth(user, password)
    files = client.pull(target=f"{edge_http.addr}/pushed/sbom:v1", outdir=str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["sbom.json"]


def upload_in_chunks(reg, repo: str, chunks: list[bytes], out_of_order: bool) -> list[int]:
    """POST, PATCH each chunk with its Content-Range (optionally one out of order first), GET the
    status, PUT the digest. Returns every status, in order."""
    statuses = []
    base = reg.url
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/")
    statuses.append(r.status_code)
    location = urllib.parse.urljoin(base, r.headers["Location"])
    offset = 0
    for i, chunk in enumerate(chunks):
        if out_of_order and i == 1:
            wrong = offset + len(chunk)
            # On the session's pooled keep-alive connection: the edge drains the body of a chunk
            # it refuses, so the next request on the connection goes through.
            bad = reg.http.patch(location, data=chunks[2], timeout=60, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{wrong}-{wrong + len(chunks[2]) - 1}"})
            statuses.append(bad.status_code)
        r = reg.http.patch(location, data=chunk, timeout=60, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        statuses.append(r.status_code)
        assert r.headers["Range"] == f"0-{offset + len(chunk) - 1}"
        offset += len(chunk)
        location = urllib.parse.urljoin(base, r.headers["Location"])
    r = reg.http.get(location, timeout=60)
    statuses.append(r.status_code)
    assert r.headers["Range"] == f"0-{offset - 1}"
    location = urllib.parse.urljoin(base, r.headers["Location"])
    digest = sha256(b"".join(chunks))
    sep = "&" if "?" in location else "?"
    r = reg.http.put(f"{location}{sep}digest={urllib.parse.quote(digest)}", timeout=60)
    statuses.append(r.status_code)
    assert r.headers["Docker-Content-Digest"] == digest
    return statuses


def test_chunked_upload_and_out_of_order_chunk(edge_http, origin):
    chunks = [os.urandom(1 << 20) for _ in range(3)]
    through_edge = upload_in_chunks(edge_http, "pushed/chunked", chunks, out_of_order=True)
    # The edge refuses the out-of-order chunk (416) without forwarding it.
    assert through_edge == [202, 202, 416, 202, 202, 204, 201]
    head = edge_http.request("HEAD", f"/v2/pushed/chunked/blobs/{sha256(b''.join(chunks))}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(3 << 20)


def test_write_sequences_match_the_origin(edge_http, origin):
    """The same upload sequence straight to the origin and through the edge: same statuses and
    content. The one intentional difference: an out-of-order chunk, which distribution 2.8 accepts
    with 202 (and then fails the final PUT) and the edge refuses with 416."""
    chunks = [os.urandom(300_000) for _ in range(3)]
    assert upload_in_chunks(origin, "diff/origin", chunks, False) == \
        upload_in_chunks(edge_http, "diff/edge", chunks, False)
    digest = sha256(b"".join(chunks))
    # The same content under the same digest, each read through the registry it was pushed to
    # (both redirect to storage; the edge answers HEAD itself).
    for reg, repo, head in [(origin, "diff/origin", 307), (edge_http, "diff/edge", 200)]:
        r = reg.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == head, (reg.name, r.status_code)
        r = reg.request("GET", f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 307, (reg.name, r.status_code)
        data = requests.get(urllib.parse.urljoin(reg.url, r.headers["Location"]), timeout=60).content
        assert data == b"".join(chunks), reg.name
        assert sha256(data) == digest
    # Origin accepts an out-of-order chunk; the edge does not.
    r = origin.request("POST", "/v2/diff/origin/blobs/uploads/")
    loc = urllib.parse.urljoin(origin.url, r.headers["Location"])
    bad = requests.patch(loc, data=b"x" * 10, headers={"Content-Range": "100-109"}, timeout=30)
    assert bad.status_code == 202


def test_monolithic_upload_mount_and_cancel(edge_http):
    blob = os.urandom(50_000)
    digest = sha256(blob)
    r = edge_http.request("POST", f"/v2/pushed/mono/blobs/uploads/?digest={digest}", data=blob,
                          headers={"Content-Type": "application/octet-stream"})
    # The origin (distribution 2.8) does not take single-POST uploads and says so with a 202, as
    # the spec allows: the client then PUTs the blob to the upload.
    assert r.status_code == 202, r.text
    location = urllib.parse.urljoin(edge_http.url, r.headers["Location"])
    r = edge_http.http.put(f"{location}&digest={urllib.parse.quote(digest)}", data=blob, timeout=30,
                           headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert edge_http.request("HEAD", f"/v2/pushed/mono/blobs/{digest}").status_code == 200
    # Cross-repository mount: 201 when the source has it, 202 (a plain upload) when not.
    r = edge_http.request("POST", f"/v2/pushed/mounted/blobs/uploads/?mount={digest}&from=pushed/mono")
    assert r.status_code == 201
    assert edge_http.request("HEAD", f"/v2/pushed/mounted/blobs/{digest}").status_code == 200
    r = edge_http.request("POST", f"/v2/pushed/mounted2/blobs/uploads/?mount={digest}&from=no/such")
    assert r.status_code == 202
    # Cancel that upload: it is gone.
    location = urllib.parse.urljoin(edge_http.url, r.headers["Location"])
    assert edge_http.http.delete(location, timeout=30).status_code == 204
    r = edge_http.http.get(location, timeout=30)
    assert r.status_code == 404
    assert error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_bad_writes_are_refused_before_the_origin(edge_http):
    cases = [
        ("POST", "/v2/pushed/x/blobs/uploads/?digest=sha256:abc", "DIGEST_INVALID"),
        ("POST", "/v2/pushed/x/blobs/uploads/?mount=sha256:abc&from=a", "DIGEST_INVALID"),
        ("POST", f"/v2/pushed/x/blobs/uploads/?mount={sha256(b'')}&from=A/B", "NAME_INVALID"),
        ("PUT", f"/v2/pushed/x/manifests/{sha256(b'other')}", "DIGEST_INVALID"),
        ("PUT", "/v2/Pushed/x/manifests/1", "NAME_INVALID"),
    ]
    for method, path, code in cases:
        r = edge_http.request(method, path, data=b'{"schemaVersion":2}',
                              headers={"Content-Type": OCI})
        assert r.status_code == 400, (method, path, r.text)
        assert error_codes(r) == [code]


def small_manifest(edge, repo: str, note: str) -> tuple[bytes, str]:
    config = push_blob(edge.url, repo, b"{}", auth=edge.auth)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI,
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": config, "size": 2},
                       "layers": [], "annotations": {"note": note}}).encode()
    return body, sha256(body)


def test_read_your_writes_and_delete(origin):
    """On an edge that caches tags for an hour (EDGE_LONGCACHE): only the edge's invalidation after
    its own writes can make the next read fresh."""
    edge = edge_registry("edge-longcache", "EDGE_LONGCACHE", tls=False)
    repo = f"pushed/ryw-{os.urandom(3).hex()}"
    first, first_digest = small_manifest(edge, repo, "first")
    push_manifest(edge.url, repo, "t", first, OCI, auth=edge.auth)
    assert digest_at(edge, repo, "t") == first_digest      # now cached at the edge
    # Control: a write the edge does not see (straight to the origin) stays unseen for the hour.
    behind, behind_digest = small_manifest(edge, repo, "behind the edge's back")
    push_manifest(origin.url, repo, "t", behind, OCI)
    assert digest_at(origin, repo, "t") == behind_digest
    assert digest_at(edge, repo, "t") == first_digest
    second, second_digest = small_manifest(edge, repo, "second")
    r = edge.http.put(f"{edge.url}/v2/{repo}/manifests/t", data=second,
                      headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 201
    assert r.headers["Location"].startswith(f"{edge.url}/v2/{repo}/manifests/")
    assert digest_at(edge, repo, "t") == second_digest     # at once, not after the TTL
    # Delete through the edge: the next pull through the edge is a 404.
    r = edge.request("DELETE", f"/v2/{repo}/manifests/{second_digest}")
    assert r.status_code == 202
    for ref in [second_digest, "t"]:
        r = edge.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": OCI})
        assert r.status_code == 404, ref
    assert origin.request("GET", f"/v2/{repo}/manifests/{second_digest}",
                          {"Accept": OCI}).status_code == 404
    # Each write the edge forwarded is an event line in its log, with its actor.
    log = (Path(env("STACK_DIR")) / "edge-longcache.log").read_text()
    events = [json.loads(line.split("event ", 1)[1]) for line in log.splitlines()
              if line.startswith("event ") and f'"repository":"{repo}"' in line]
    assert [(e["action"], e.get("tag"), e.get("digest")) for e in events] == [
        ("push", "t", first_digest), ("push", "t", second_digest), ("delete", None, second_digest)]
    assert {e["actor"] for e in events} == {f"admin:{edge.auth[0]}"}
    assert all(e["mediaType"] == OCI for e in events if e["action"] == "push")


def test_referrer_push_keeps_the_subject_header(edge_http):
    repo = "pushed/ryw2"
    subject, subject_digest = small_manifest(edge_http, repo, "subject")
    push_manifest(edge_http.url, repo, "s", subject, OCI, auth=edge_http.auth)
    referrer = json.loads(small_manifest(edge_http, repo, "referrer")[0])
    referrer["artifactType"] = "application/vnd.example.signature.v1+json"
    referrer["subject"] = {"mediaType": OCI, "digest": subject_digest, "size": len(subject)}
    body = json.dumps(referrer).encode()
    r = edge_http.http.put(f"{edge_http.url}/v2/{repo}/manifests/{sha256(body)}", data=body,
                     headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 201
    assert r.headers["OCI-Subject"] == subject_digest
    # Listed within the queue's delivery (the referrers index follows the write).
    wait_for("the referrer listed", lambda: [m["digest"] for m in edge_http.request(
        "GET", f"/v2/{repo}/referrers/{subject_digest}").json()["manifests"]] == [sha256(body)], 60)


@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_a_refused_body_leaves_the_connection_usable(edge_http, who):
    """A request the edge refuses before reading its body (a forged session: 404; no credentials:
    401), then a second request on the same keep-alive connection: it is answered, not reset."""
    host, port = edge_http.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    auth = {"Authorization": requests.auth._basic_auth_str(*edge_http.auth)}
    try:
        conn.request("PATCH", "/v2/pushed/drained/blobs/uploads/u1?_state=forged",
                     body=os.urandom(1 << 20),
                     headers={"Content-Type": "application/octet-stream",
                              **(auth if who == "admin" else {})})
        first = conn.getresponse()
        first.read()
        assert first.status == (404 if who == "admin" else 401)
        conn.request("GET", "/v2/", headers=auth)
        second = conn.getresponse()
        assert second.status == 200 and second.read() == b"{}"
    finally:
        conn.close()
