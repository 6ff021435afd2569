"""Where the edge answers as the current OCI distribution spec says, including where its origin
(distribution 2.8) falls short: sha512 blobs, OCI-Subject, referrers without 404, the upload's
digest, out-of-order final chunks, the mount challenge, Docker-Content-Digest on every read, and
several tags in one push. HTTP level: no client here speaks these features yet."""
import hashlib
import json
import os
import sys
import urllib.parse
from pathlib import Path

import requests

from conftest import admin, edge_registry, error_codes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

OCI = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def upload(reg, repo: str, data: bytes, digest: str) -> requests.Response:
    """POST a session, then PUT the whole blob with `digest`: the final answer."""
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = urllib.parse.urljoin(reg.url, r.headers["Location"])
    sep = "&" if "?" in location else "?"
    return reg.http.put(f"{location}{sep}digest={urllib.parse.quote(digest)}", data=data,
                        headers={"Content-Type": "application/octet-stream"}, timeout=60)


def manifest(edge, repo: str, note: str, **extra) -> bytes:
    config = push_blob(edge.url, repo, b"{}", auth=edge.auth)
    body = {"schemaVersion": 2, "mediaType": OCI,
            "config": {"mediaType": EMPTY, "digest": config, "size": 2},
            "layers": [], "annotations": {"note": note}, **extra}
    return json.dumps(body).encode()


def test_a_sha512_blob_is_served_by_its_digest(edge_http, origin):
    repo = "spec/sha512"
    data = os.urandom(70_000)
    digest = sha512(data)
    r = upload(edge_http, repo, data, digest)
    assert r.status_code == 201, r.text
    # The digest the client named, not the canonical sha256 the origin stored it under.
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"].endswith(f"/v2/{repo}/blobs/{digest}")
    # The origin serves it by that digest too (it follows the sha512 link to the sha256 blob).
    assert origin.request("HEAD", f"/v2/{repo}/blobs/{digest}").status_code == 307
    head = edge_http.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200, head.text
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Length"] == str(len(data))
    get = edge_http.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert get.status_code == 307 and get.headers["Docker-Content-Digest"] == digest
    fetched = requests.get(urllib.parse.urljoin(edge_http.url, get.headers["Location"]),
                           verify=False, timeout=60).content
    assert hashlib.sha512(fetched).hexdigest() == digest.split(":")[1]
    # The canonical digest is linked too, and the alias dies with it.
    canonical = sha256(data)
    assert edge_http.request("HEAD", f"/v2/{repo}/blobs/{canonical}").status_code == 200
    # Another repository links neither.
    assert edge_http.request("HEAD", f"/v2/spec/other/blobs/{digest}").status_code == 404
    r = edge_http.request("DELETE", f"/v2/{repo}/blobs/{canonical}")
    assert r.status_code == 202, r.text
    for d in (canonical, digest):
        r = edge_http.request("HEAD", f"/v2/{repo}/blobs/{d}")
        assert r.status_code == 404, (d, r.status_code)


def test_a_manifest_with_a_subject_gets_oci_subject(edge_http):
    repo = "spec/subject"
    subject = manifest(edge_http, repo, "subject")
    push_manifest(edge_http.url, repo, "s", subject, OCI, auth=edge_http.auth)
    referrer = manifest(edge_http, repo, "referrer", artifactType="application/vnd.example+json",
                        subject={"mediaType": OCI, "digest": sha256(subject), "size": len(subject)})
    r = edge_http.http.put(f"{edge_http.url}/v2/{repo}/manifests/{sha256(referrer)}", data=referrer,
                           headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == sha256(subject)
    # Without a subject, no such header.
    plain = manifest(edge_http, repo, "plain")
    r = edge_http.http.put(f"{edge_http.url}/v2/{repo}/manifests/p", data=plain,
                           headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 201 and "OCI-Subject" not in r.headers


def test_referrers_never_answer_404(edge_http):
    unknown = sha256(os.urandom(8))
    for repo in ["library/busybox", "spec/no-such-repository"]:
        r = edge_http.request("GET", f"/v2/{repo}/referrers/{unknown}")
        assert r.status_code == 200, (repo, r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
        assert r.json() == {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": []}
    # Still behind auth.
    r = requests.get(f"{edge_http.url}/v2/spec/no-such-repository/referrers/{unknown}", timeout=30)
    assert r.status_code == 401


def test_an_out_of_order_final_chunk_is_416(edge_http):
    repo = "spec/final-chunk"
    r = edge_http.request("POST", f"/v2/{repo}/blobs/uploads/")
    location = urllib.parse.urljoin(edge_http.url, r.headers["Location"])
    r = edge_http.http.patch(location, data=b"a" * 10, timeout=30, headers={
        "Content-Type": "application/octet-stream", "Content-Range": "0-9"})
    assert r.status_code == 202
    location = urllib.parse.urljoin(edge_http.url, r.headers["Location"])
    data = b"a" * 10 + b"b" * 5
    sep = "&" if "?" in location else "?"
    bad = edge_http.http.put(f"{location}{sep}digest={sha256(data)}", data=b"b" * 5, timeout=30,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Range": "20-24"})
    assert bad.status_code == 416, bad.text
    assert error_codes(bad) == ["RANGE_INVALID"]
    assert bad.headers["Range"] == "0-9"
    # The session is intact: the right final chunk completes it.
    good = edge_http.http.put(f"{location}{sep}digest={sha256(data)}", data=b"b" * 5, timeout=30,
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": "10-14"})
    assert good.status_code == 201, good.text


def token(edge, scope: str) -> str:
    r = requests.get(f"{edge.url}/oauth2/token", auth=admin(), verify=False, timeout=30,
                     params={"service": service_of(edge), "scope": scope.split(" ")})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def service_of(edge) -> str:
    challenge = requests.get(f"{edge.url}/v2/", verify=False, timeout=30).headers["WWW-Authenticate"]
    return challenge.split('service="')[1].split('"')[0]


def test_a_mount_challenge_names_the_source(edge_http):
    source, target = "spec/mount-source", "spec/mount-target"
    data = os.urandom(1000)
    blob = push_blob(edge_http.url, source, data, auth=edge_http.auth)
    path = f"/v2/{target}/blobs/uploads/?mount={blob}&from={source}"
    narrow = token(edge_http, f"repository:{target}:pull,push")
    r = requests.post(edge_http.url + path, headers={"Authorization": f"Bearer {narrow}"}, timeout=30)
    assert r.status_code == 401, r.text
    challenge = r.headers["WWW-Authenticate"]
    assert f'scope="repository:{target}:pull,push repository:{source}:pull"' in challenge
    assert 'error="insufficient_scope"' in challenge
    # A token with both scopes, as a client gets it from that challenge: the mount is made.
    both = token(edge_http, f"repository:{target}:pull,push repository:{source}:pull")
    r = requests.post(edge_http.url + path, headers={"Authorization": f"Bearer {both}"}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == blob
    assert edge_http.request("HEAD", f"/v2/{target}/blobs/{blob}").status_code == 200


def test_every_manifest_and_blob_read_names_its_digest(edge_http):
    repo = "spec/digests"
    body = manifest(edge_http, repo, "digests")
    digest = push_manifest(edge_http.url, repo, "v1", body, OCI, auth=edge_http.auth)
    config = json.loads(body)["config"]["digest"]
    for method in ["GET", "HEAD"]:
        for ref in ["v1", digest]:
            r = edge_http.request(method, f"/v2/{repo}/manifests/{ref}", {"Accept": OCI})
            assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest, (method, ref)
        # The edge answers blob HEAD itself and redirects GET to storage.
        r = edge_http.request(method, f"/v2/{repo}/blobs/{config}")
        assert r.status_code == {"HEAD": 200, "GET": 307}[method], (method, r.status_code)
        assert r.headers["Docker-Content-Digest"] == config, method


def test_several_tags_in_one_push(edge_http, origin):
    repo = "spec/tags"
    body = manifest(edge_http, repo, "tags")
    digest = sha256(body)
    url = f"{edge_http.url}/v2/{repo}/manifests/{digest}?tag=a&tag=b&tag=c"
    r = edge_http.http.put(url, data=body, headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert [t.strip() for t in r.headers["OCI-Tag"].split(",")] == ["a", "b", "c"]
    for tag in ["a", "b", "c"]:
        r = edge_http.request("HEAD", f"/v2/{repo}/manifests/{tag}", {"Accept": OCI})
        assert r.headers["Docker-Content-Digest"] == digest, tag
        # On the origin as well: each tag was one push there.
        r = origin.request("HEAD", f"/v2/{repo}/manifests/{tag}", {"Accept": OCI})
        assert r.headers["Docker-Content-Digest"] == digest, tag
    assert edge_http.request("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["a", "b", "c"]
    # A bad tag refuses the whole push before anything reaches the origin.
    other = manifest(edge_http, repo, "bad tag")
    r = edge_http.http.put(f"{edge_http.url}/v2/{repo}/manifests/{sha256(other)}?tag=d&tag=-bad",
                           data=other, headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 400 and error_codes(r) == ["TAG_INVALID"]
    assert origin.request("HEAD", f"/v2/{repo}/manifests/d", {"Accept": OCI}).status_code == 404
    # ?tag= belongs to a push by digest.
    r = edge_http.http.put(f"{edge_http.url}/v2/{repo}/manifests/e?tag=f", data=other,
                           headers={"Content-Type": OCI}, timeout=30)
    assert r.status_code == 400 and error_codes(r) == ["BAD_REQUEST"]


def warnings(value: str) -> list[str]:
    """The warnings of a Warning list, split at the commas outside quoted text."""
    out, current, quoted, escaped = [], "", False, False
    for c in value:
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            out.append(current.strip())
            current = ""
            continue
        current += c
    out.append(current.strip())
    return [w for w in out if w]


def test_origin_warnings_reach_the_client():
    """Registry warnings (code 299) the origin sends on a write reach the client unchanged; a
    warning of another kind does not (tests/support/warning-proxy.py adds both)."""
    edge = edge_registry("edge-warning", "EDGE_WARNING", tls=False)
    r = edge.request("POST", "/v2/spec/warned/blobs/uploads/")
    assert r.status_code == 202, r.text
    # One header per warning or one comma-separated list: the same thing (RFC 9110 5.3).
    assert warnings(", ".join(r.raw.headers.getlist("Warning"))) == [
        '299 - "this repository is deprecated"', '299 - "pushes here end in 2027"']
    digest = push_blob(edge.url, "spec/warned", b"warned", auth=edge.auth)
    assert edge.request("HEAD", f"/v2/spec/warned/blobs/{digest}").status_code == 200


def test_a_zero_byte_blob_fails_as_on_the_origin(edge_http, origin):
    """A known limitation (README): distribution 2.8's S3 driver cannot commit an empty upload.
    The edge passes the origin's answer on; if the origin ever takes it, the README must change."""
    empty = sha256(b"")
    for reg in (origin, edge_http):
        r = upload(reg, f"spec/zero-{reg.name}", b"", empty)
        assert r.status_code == 500 and error_codes(r) == ["UNKNOWN"], (reg.name, r.status_code, r.text)
