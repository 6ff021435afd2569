"""The read API through the edge, with real clients, against every storage backend."""
import hashlib
import json
import os
import subprocess
import urllib.parse

import oras.client
import pytest
import requests

from conftest import Registry, edge_registry, error_codes

OCI_ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
              "application/vnd.docker.distribution.manifest.v2+json, "
              "application/vnd.docker.distribution.manifest.list.v2+json")
IMAGES = ["library/busybox:1", "multi/arch:latest", "docker/v2s2:1", "team/app/service:v1",
          "artifacts/sbom:v1"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(reg, image: str) -> requests.Response:
    repo, tag = image.rsplit(":", 1)
    return reg.request("GET", f"/v2/{repo}/manifests/{tag}", {"Accept": OCI_ACCEPT})


def test_wrangler_dev_serves_what_the_origin_holds(origin):
    """The edge as `scripts/dev` runs it: wrangler.toml, built by its [build] command."""
    wrangler = edge_registry("edge-wrangler", "EDGE_WRANGLER", tls=False)
    for image in IMAGES:
        at_edge, at_origin = manifest(wrangler, image), manifest(origin, image)
        assert at_edge.status_code == 200, image
        assert at_edge.content == at_origin.content, image


def test_odd_header_values_do_not_break_requests(edge):
    """Header values outside ASCII (a user agent with an accent, sent as Latin-1) are carried or
    left out, never a failed request."""
    r = edge.request("GET", "/v2/library/busybox/tags/list",
                     {"User-Agent": "client/1.0 (\u00e9t\u00e9)", "X-Note": "caf\u00e9"})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["1", "a", "b", "c", "latest"]


def test_version_check(edge):
    r = edge.request("GET", "/v2/")
    assert r.status_code == 200
    assert r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("image", IMAGES)
def test_manifests_match_the_origin(edge, origin, image):
    at_edge, at_origin = manifest(edge, image), manifest(origin, image)
    assert at_edge.status_code == at_origin.status_code == 200
    assert at_edge.content == at_origin.content
    assert at_edge.headers["Content-Type"] == at_origin.headers["Content-Type"]
    assert at_edge.headers["Docker-Content-Digest"] == sha256(at_edge.content)
    assert at_edge.headers["Content-Length"] == str(len(at_edge.content))
    head = edge.request("HEAD", urllib.parse.urlparse(at_edge.url).path, {"Accept": OCI_ACCEPT})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(at_edge.content))
    assert head.headers["Docker-Content-Digest"] == at_edge.headers["Docker-Content-Digest"]


def test_skopeo_copy_all_keeps_every_digest(edge, origin, tmp_path):
    """`skopeo copy --all` of the multi-arch index through the edge: the index and each platform's
    manifest are byte-identical to the origin's, and skopeo verified every blob it fetched."""
    for image in ["multi/arch:latest", "library/busybox:1", "docker/v2s2:1", "team/app/service:v1"]:
        out = tmp_path / image.replace("/", "_").replace(":", "_")
        r = edge.skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{edge.addr}/{image}",
                        f"dir:{out}")
        assert r.returncode == 0, r.stderr
        top = (out / "manifest.json").read_bytes()
        want = manifest(origin, image)
        assert sha256(top) == want.headers["Docker-Content-Digest"], image
        if b'"manifests"' in top:
            children = [m["digest"] for m in json.loads(top)["manifests"]]
            assert len(children) == 2
            for digest in children:
                hexpart = digest.split(":")[1]
                assert sha256((out / f"{hexpart}.manifest.json").read_bytes()) == digest


def test_skopeo_inspect(edge):
    r = edge.skopeo("inspect", "--tls-verify=false", f"docker://{edge.addr}/team/app/service:v1")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Name"].endswith("team/app/service")
    assert len(info["Layers"]) >= 1
    r = edge.skopeo("list-tags", "--tls-verify=false", f"docker://{edge.addr}/library/busybox")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Tags"] == ["1", "a", "b", "c", "latest"]


def test_oras_pull_artifact(edge, origin, tmp_path):
    client = oras.client.OrasClient(hostname=edge.addr, tls_verify=False)
    client.auth.set_basic_auth(*edge.auth)
    files = client.pull(target=f"{edge.addr}/artifacts/sbom:v1", outdir=str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["sbom.json"]
    sbom = (tmp_path / "sbom.json").read_bytes()
    body = manifest(edge, "artifacts/sbom:v1").json()
    assert body["artifactType"] == "application/vnd.example.sbom.v1+json"
    assert body["layers"][0]["digest"] == sha256(sbom)
    assert json.loads(sbom)["name"] == "busybox"


def blob_of(reg, repo: str, tag: str) -> dict:
    return manifest(reg, f"{repo}:{tag}").json()["layers"][0]


def test_blob_head_and_redirect(edge):
    layer = blob_of(edge, "library/busybox", "1")
    path = f"/v2/library/busybox/blobs/{layer['digest']}"
    head = edge.request("HEAD", path)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(layer["size"])
    assert head.headers["Docker-Content-Digest"] == layer["digest"]
    assert head.headers["Accept-Ranges"] == "bytes"

    r = edge.request("GET", path)
    assert r.status_code == 307
    assert r.headers["Docker-Content-Digest"] == layer["digest"]
    location = r.headers["Location"]
    assert location.startswith(os.environ["S3_ENDPOINT"] + "/")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=1200" in location
    data = requests.get(location, timeout=30)
    assert data.status_code == 200
    assert sha256(data.content) == layer["digest"]
    # Range requests go straight to storage.
    part = requests.get(location, headers={"Range": "bytes=0-9"}, timeout=30)
    assert part.status_code == 206
    assert part.content == data.content[:10]


def test_no_cross_repository_blob_access(edge):
    """A blob that exists in storage but is not linked into the repository is unknown there."""
    layer = blob_of(edge, "artifacts/sbom", "v1")
    for method in ["GET", "HEAD"]:
        r = edge.request(method, f"/v2/library/busybox/blobs/{layer['digest']}")
        assert r.status_code == 404, method
        assert "Location" not in r.headers
    assert error_codes(edge.request("GET", f"/v2/library/busybox/blobs/{layer['digest']}")) == ["BLOB_UNKNOWN"]


DOT_SEGMENTS_RESOLVED = "resolved by the runtime"


@pytest.mark.parametrize("path,resolved", [
    ("/v2/a/../library/busybox/tags/list", "/v2/library/busybox/tags/list"),
    ("/v2/library/../library/busybox/tags/list", "/v2/library/busybox/tags/list"),
    ("/v2/a/%2e%2e/library/busybox/tags/list", DOT_SEGMENTS_RESOLVED),
    ("/v2/library/busybox/../../_catalog", "/v2/_catalog"),
    ("/v2/%2e%2e/v2/library/busybox/tags/list", DOT_SEGMENTS_RESOLVED),
])
def test_dot_segments_never_escape_a_name(edge, path, resolved):
    """The runtime's URL parser resolves dot segments (RFC 3986), percent-encoded ones included,
    before the worker sees the path, so `a/../b` can only ever address `b`, a name validated like
    any other."""
    if resolved == DOT_SEGMENTS_RESOLVED:
        resolved = "/v2/library/busybox/tags/list"
    assert edge.raw("GET", path) == edge.raw("GET", resolved)


@pytest.mark.parametrize("path", [
    "/v2/a..b/tags/list",
    "/v2/Library/busybox/manifests/1",
    "/v2/library//busybox/manifests/1",
    "/v2/library%2Fbusybox/manifests/1",
    "/v2/library%2fbusybox/tags/list",
    "/v2/" + "a" * 256 + "/tags/list",
])
def test_invalid_names_are_refused(edge, path):
    status, body = edge.raw("GET", path)
    assert status == 400, body
    assert [e["code"] for e in json.loads(body)["errors"]] == ["NAME_INVALID"]


@pytest.mark.parametrize("path,status,code", [
    ("/v2/library/busybox/manifests/sha256:abc", 400, "DIGEST_INVALID"),
    ("/v2/library/busybox/blobs/sha256:" + "A" * 64, 400, "DIGEST_INVALID"),
    ("/v2/library/busybox/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
    ("/v2/library/busybox/manifests/no-such-tag", 404, "MANIFEST_UNKNOWN"),
    ("/v2/library/busybox/manifests/sha256:" + "0" * 64, 404, "MANIFEST_UNKNOWN"),
    ("/v2/library/busybox/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
    ("/v2/no/such/repo/manifests/1", 404, "NAME_UNKNOWN"),
    ("/v2/no/such/repo/tags/list", 404, "NAME_UNKNOWN"),
])
def test_errors_are_oci_json(edge, path, status, code):
    r = edge.request("GET", path, {"Accept": OCI_ACCEPT})
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("application/json")
    assert error_codes(r) == [code]
    assert r.json()["errors"][0]["message"]


def test_the_r2_edge_is_read_only(edge):
    """The R2 edge has no origin configured: writes are refused with a clear error."""
    if edge.name != "edge-r2":
        pytest.skip("only the R2 edge runs without an origin")
    r = edge.request("POST", "/v2/library/busybox/blobs/uploads/")
    assert r.status_code == 405
    assert error_codes(r) == ["UNSUPPORTED"]
    assert "ORIGIN_URL" in r.json()["errors"][0]["message"]


def test_tags_pagination(edge):
    seen, path = [], "/v2/library/busybox/tags/list?n=2"
    while path:
        r = edge.request("GET", path)
        assert r.status_code == 200
        page = r.json()["tags"]
        assert len(page) <= 2
        seen += page
        link = r.headers.get("Link")
        path = link[1:link.index(">")] if link else None
        if link:
            assert link.endswith('rel="next"')
    assert seen == ["1", "a", "b", "c", "latest"]


def test_catalog(edge):
    r = edge.request("GET", "/v2/_catalog")
    assert r.status_code == 200
    repos = r.json()["repositories"]
    for repo in ["artifacts/sbom", "docker/v2s2", "library/busybox", "multi/arch", "team/app/service"]:
        assert repo in repos
    seen, path = [], "/v2/_catalog?n=2"
    while path:
        r = edge.request("GET", path)
        seen += r.json()["repositories"]
        link = r.headers.get("Link")
        path = link[1:link.index(">")] if link else None
    assert seen == repos


def test_referrers(edge, origin):
    subject = manifest(origin, "library/busybox:1").headers["Docker-Content-Digest"]
    r = edge.request("GET", f"/v2/library/busybox/referrers/{subject}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    index = r.json()
    assert index["schemaVersion"] == 2
    types = [m.get("artifactType") for m in index["manifests"]]
    assert "application/vnd.example.signature.v1+json" in types
    r = edge.request("GET", f"/v2/library/busybox/referrers/{subject}?artifactType=application/x-none")
    assert r.json()["manifests"] == []
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
