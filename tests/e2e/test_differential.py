"""The same read requests to the edge and to the origin: statuses, key headers and bodies agree,
except where the edge differs on purpose (listed in DIFFERENCES with the reason)."""
import json

import pytest

from conftest import cli, holds_manifest

DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALL = ", ".join([OCI, OCI_INDEX, DOCKER, DOCKER_LIST])
ACCEPTS = {"all": ALL, "oci": f"{OCI}, {OCI_INDEX}", "docker": f"{DOCKER}, {DOCKER_LIST}"}
ZERO = "sha256:" + "0" * 64

# Headers whose values must agree when both sides send them.
KEY_HEADERS = ["Content-Type", "Docker-Content-Digest", "Content-Length", "Etag", "Link"]


def digest_of(origin, repo, tag):
    r = origin.request("GET", f"/v2/{repo}/manifests/{tag}", {"Accept": ALL})
    assert r.status_code == 200, (repo, tag)
    return r.headers["Docker-Content-Digest"]


def layer_of(origin, repo, tag):
    r = origin.request("GET", f"/v2/{repo}/manifests/{tag}", {"Accept": ALL})
    return r.json()["layers"][0]["digest"]


def send(registry, method, path, headers):
    # Compare representations, not transfer encodings: workerd (like Cloudflare) compresses JSON
    # for clients that accept gzip, and then sends no Content-Length.
    return registry.request(method, path, {"Accept-Encoding": "identity", **headers})


def cases(origin):
    """(id, method, path, headers)"""
    busybox = digest_of(origin, "library/busybox", "1")
    index = digest_of(origin, "multi/arch", "latest")
    layer = layer_of(origin, "library/busybox", "1")
    sbom_layer = layer_of(origin, "artifacts/sbom", "v1")
    out = []
    for repo, tag in [("library/busybox", "1"), ("multi/arch", "latest"), ("docker/v2s2", "1"),
                      ("team/app/service", "v1"), ("artifacts/sbom", "v1")]:
        for accept_name, accept in ACCEPTS.items():
            for method in ["GET", "HEAD"]:
                out.append((f"{method} {repo}:{tag} accept={accept_name}", method,
                            f"/v2/{repo}/manifests/{tag}", {"Accept": accept}))
    for method in ["GET", "HEAD"]:
        out += [
            (f"{method} busybox by digest", method, f"/v2/library/busybox/manifests/{busybox}", {"Accept": ALL}),
            (f"{method} index by digest", method, f"/v2/multi/arch/manifests/{index}", {"Accept": ALL}),
            (f"{method} unknown tag", method, "/v2/library/busybox/manifests/nope", {"Accept": ALL}),
            (f"{method} unknown digest", method, f"/v2/library/busybox/manifests/{ZERO}", {"Accept": ALL}),
            (f"{method} manifest of another repo", method, f"/v2/docker/v2s2/manifests/{index}", {"Accept": ALL}),
        ]
    out += [
        ("GET version", "GET", "/v2/", {}),
        ("HEAD blob", "HEAD", f"/v2/library/busybox/blobs/{layer}", {}),
        ("GET blob", "GET", f"/v2/library/busybox/blobs/{layer}", {}),
        ("HEAD unknown blob", "HEAD", f"/v2/library/busybox/blobs/{ZERO}", {}),
        ("GET unknown blob", "GET", f"/v2/library/busybox/blobs/{ZERO}", {}),
        ("GET blob of another repo", "GET", f"/v2/library/busybox/blobs/{sbom_layer}", {}),
        ("HEAD blob of another repo", "HEAD", f"/v2/library/busybox/blobs/{sbom_layer}", {}),
        ("GET tags", "GET", "/v2/library/busybox/tags/list", {}),
        ("GET tags n=2", "GET", "/v2/library/busybox/tags/list?n=2", {}),
        ("GET tags n=2 last=a", "GET", "/v2/library/busybox/tags/list?n=2&last=a", {}),
        ("GET tags last=c", "GET", "/v2/library/busybox/tags/list?last=c", {}),
        ("GET tags deep", "GET", "/v2/team/app/service/tags/list", {}),
        ("GET tags unknown repo", "GET", "/v2/no/such/tags/list", {}),
        ("GET catalog", "GET", "/v2/_catalog", {}),
        ("GET catalog n=2", "GET", "/v2/_catalog?n=2", {}),
        ("GET catalog n=2 last=docker/v2s2", "GET", "/v2/_catalog?n=2&last=docker%2Fv2s2", {}),
        ("GET catalog n=100", "GET", "/v2/_catalog?n=100", {}),
        ("GET invalid name", "GET", "/v2/Library/busybox/manifests/1", {}),
        ("GET invalid name //", "GET", "/v2/library//busybox/tags/list", {}),
        ("GET invalid digest", "GET", "/v2/library/busybox/manifests/sha256:abc", {}),
        ("GET invalid blob digest", "GET", "/v2/library/busybox/blobs/sha256:xyz", {}),
        ("GET unknown repo manifest", "GET", "/v2/no/such/manifests/1", {"Accept": ALL}),
        ("GET unknown repo blob", "GET", f"/v2/no/such/blobs/{layer}", {}),
        ("GET referrers unknown digest", "GET", f"/v2/library/busybox/referrers/{ZERO}", {}),
        ("GET referrers unknown repo", "GET", f"/v2/no/such/referrers/{ZERO}", {}),
    ]
    return out


# id -> reason. The edge answers differently on purpose.
DIFFERENCES = {
    "HEAD blob": "the edge answers blob HEAD itself (200 + size); the origin redirects to storage",
    "GET blob": "both redirect (307); the presigned Location differs and the edge adds "
                "Docker-Content-Digest",
    "GET unknown repo manifest": "the edge says NAME_UNKNOWN for a repository that does not exist; "
                                 "distribution 2.8 says MANIFEST_UNKNOWN",
    "GET unknown repo blob": "the edge says NAME_UNKNOWN; distribution 2.8 says BLOB_UNKNOWN",
    "GET invalid name": "distribution 2.8's router does not match the path (404 text); the edge "
                        "answers 400 NAME_INVALID",
    "GET invalid name //": "as above",
    "GET invalid digest": "distribution 2.8 does not match the path (404 text); the edge answers "
                          "400 DIGEST_INVALID",
    "GET docker/v2s2:1 accept=oci": "distribution 2.8 rewrites a schema 2 manifest fetched by tag "
                                     "into signed schema 1 for clients that do not accept schema 2; "
                                     "schema 1 is deprecated (gone from distribution 3), so the edge "
                                     "serves the stored bytes",
    "HEAD docker/v2s2:1 accept=oci": "as above",
    "GET tags n=2": "distribution 2.8 ignores n and last on tags/list; the edge paginates as the "
                    "OCI spec says (with a Link header)",
    "GET tags n=2 last=a": "as above",
    "GET tags last=c": "as above",
    "GET referrers unknown digest": "distribution 2.8 has no referrers API (404); the edge serves "
                                    "it and, as the spec requires of a registry that does, never "
                                    "answers 404: an unknown subject has an empty index",
    "GET referrers unknown repo": "as above, for a repository with no manifests",
}


def summary(resp):
    body = resp.content
    ctype = resp.headers.get("Content-Type", "")
    if ctype.startswith("application/json") and body:
        parsed = json.loads(body)
        if "errors" in parsed:
            # Messages and details are free text; the codes are the contract.
            body = json.dumps([e["code"] for e in parsed["errors"]])
        else:
            body = json.dumps(parsed, sort_keys=True)
    headers = {h: resp.headers.get(h) for h in KEY_HEADERS}
    if resp.status_code >= 400:
        # Error messages are free text, so their lengths differ too.
        headers["Content-Length"] = None
    return resp.status_code, headers, body


# The edge's catalog (its index) lists the repositories that hold a manifest; distribution's every
# repository directory (one that holds only blobs too): these are compared with the origin's list
# so filtered.
CATALOG_CASES = {"GET catalog", "GET catalog n=100"}


def catalog_summary(resp, keep=lambda name: True):
    repositories = [r for r in resp.json()["repositories"] if keep(r)]
    return resp.status_code, resp.headers.get("Link"), repositories


def test_differential(origin, edge_http):
    # The edge's catalog comes from its index: built first, so that what is compared is that.
    cli(edge_http, "index", "rebuild", "--wait", "300", timeout=330)
    failures, compared = [], 0
    for case_id, method, path, headers in cases(origin):
        o = send(origin, method, path, headers)
        e = send(edge_http, method, path, headers)
        if case_id in DIFFERENCES:
            continue
        compared += 1
        if case_id in CATALOG_CASES:
            so, se = catalog_summary(o, holds_manifest), catalog_summary(e)
        else:
            so, se = summary(o), summary(e)
        if so != se:
            failures.append(f"{case_id}: {path}\n  origin {so}\n  edge   {se}")
    assert not failures, f"{len(failures)} of {compared} differ:\n" + "\n".join(failures)
    assert compared >= 45


def test_intentional_differences_still_hold(origin, edge_http):
    """Each listed difference is real: if the origin ever agrees, the entry should go."""
    by_id = {c[0]: c for c in cases(origin)}
    for case_id in DIFFERENCES:
        _, method, path, headers = by_id[case_id]
        o, e = send(origin, method, path, headers), send(edge_http, method, path, headers)
        if case_id == "GET blob":
            assert o.status_code == e.status_code == 307
            assert e.headers["Docker-Content-Digest"]
            continue
        assert summary(o) != summary(e), case_id
