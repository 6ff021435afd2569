"""The catalog and referrers indexes, end to end: kept by the edge's queue as clients push and
delete through it, rebuilt (`registry-edge index rebuild`) for what reached storage past it, read
in a bounded number of storage requests over a large generated registry, and never trusted when an
object in them was edited by hand.

Two edges: the main one (on the origin's storage, writes through the origin) and edge-scale, a
read-only edge on a registry generated straight into the bucket (`/scale`: 2,000 repositories, one
of 100 manifests with signatures), whose storage requests are counted in the S3 server's log.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import Registry, cli, cli_json, edge_registry, env, s3_client, s3_env, skopeo_push, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob  # noqa: E402

SCALE_REPOS = 2_000   # five shards: more than a filtered page may read
MANY = 100            # (the benchmark's repository has 500; the local S3 server lists slowly)
SIGNATURES = 20


@pytest.fixture(scope="module")
def edge(edge_http) -> Registry:
    """The main edge, its indexes built before the tests begin."""
    rebuilt(edge_http)
    return edge_http


@pytest.fixture(scope="module")
def scale() -> dict:
    """edge-scale, on a registry generated into /scale; what was generated."""
    reg = edge_registry("edge-scale", "EDGE_SCALE", tls=False)
    script = Path(__file__).resolve().parents[1] / "support" / "generate-registry.py"
    team = subprocess.run([sys.executable, str(script), "/scale", "--repos", "30", "--prefix", "gen/team/app"],
                          capture_output=True, text=True, timeout=600, env=s3_env())
    assert team.returncode == 0, team.stderr
    r = subprocess.run([sys.executable, str(script), "/scale", "--repos", str(SCALE_REPOS), "--prefix", "gen/repo",
                        "--manifests", str(MANY), "--repo", "gen/many", "--referrers", str(SIGNATURES)],
                       capture_output=True, text=True, timeout=600, env=s3_env())
    assert r.returncode == 0, r.stderr
    return {"reg": reg, **json.loads(r.stdout)}


def rebuilt(reg: Registry, seconds: int = 300) -> dict:
    """Runs `registry-edge index rebuild --wait`; the indexes' status when done."""
    r = cli(reg, "index", "rebuild", "--wait", str(seconds), timeout=seconds + 30)
    status = json.loads(r.stdout)
    assert status["rebuild"]["phase"] == "done" and status["catalog"]["complete"], status
    return status


def catalog(reg: Registry, auth=None, n: int = 1000) -> tuple[list[str], list[requests.Response]]:
    """The whole catalog, following Link; and every page's answer."""
    names, pages, path = [], [], f"/v2/_catalog?n={n}"
    while path:
        r = get(reg, path, auth)
        assert r.status_code == 200, r.text
        pages.append(r)
        names += r.json()["repositories"]
        link = r.headers.get("Link")
        path = link[1:link.index(">")] if link else None
        assert len(pages) < 500
    return names, pages


def referrers(reg: Registry, repo: str, subject: str) -> list[str]:
    r = get(reg, f"/v2/{repo}/referrers/{subject}")
    assert r.status_code == 200, r.text
    return [d["digest"] for d in r.json()["manifests"]]


def s3_log_lines() -> int:
    """The S3 server's requests so far under /scale (only edge-scale reads that tree)."""
    lines = Path(env("STACK_DIR"), "s3.log").read_bytes().splitlines()
    return sum(1 for line in lines if b"/registry/scale/" in line or b"prefix=scale/" in line)


def get(reg: Registry, path: str, auth=None) -> requests.Response:
    """A GET that may take long: a walk of the generated registry lists thousands of
    directories."""
    return requests.get(reg.url + path, auth=auth or reg.auth, timeout=300)


def storage_requests(reg: Registry, path: str) -> tuple[requests.Response, int]:
    """One request, and the storage requests it made (edge-scale keeps nothing in its cache but
    immutable shards)."""
    before = s3_log_lines()
    r = get(reg, path)
    time.sleep(0.3)   # the log is written after the answer
    return r, s3_log_lines() - before


def indexed(reg: Registry) -> dict:
    """The indexes' status, rebuilt first unless complete."""
    status = cli_json(reg, "index", "status")
    if status["catalog"] and status["catalog"].get("complete") and status["rebuild"]["phase"] == "done":
        return status
    return rebuilt(reg, seconds=600)


def signature(subject_digest: str, subject_size: int, note: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject_digest,
                    "size": subject_size},
        "annotations": {"org.example.note": note},
    }).encode()


def test_push_list_delete_list_through_the_edge(edge):
    repo = f"indexed/app{os.getpid()}"
    digest = skopeo_push(edge, f"{repo}:v1")
    wait_for(f"{repo} in the catalog", lambda: repo in catalog(edge)[0])
    _, pages = catalog(edge)
    assert all("Warning" not in p.headers for p in pages), "served from the index"
    r = edge.request("DELETE", f"/v2/{repo}/manifests/{digest}")
    assert r.status_code == 202, r.text
    wait_for(f"{repo} out of the catalog", lambda: repo not in catalog(edge)[0])


def test_referrers_after_pushing_and_deleting_signatures(edge):
    repo = f"indexed/signed{os.getpid()}"
    subject = skopeo_push(edge, f"{repo}:v1")
    size = len(edge.request("GET", f"/v2/{repo}/manifests/{subject}",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).content)
    push_blob(edge.url, repo, b"{}", auth=edge.auth)   # the empty descriptor's blob
    pushed = []
    for note in ("first", "second"):
        body = signature(subject, size, note)
        r = requests.put(f"{edge.url}/v2/{repo}/manifests/sha256:{hashlib.sha256(body).hexdigest()}",
                         data=body, auth=edge.auth, timeout=30,
                         headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 201, r.text
        assert r.headers["OCI-Subject"] == subject
        pushed.append(r.headers["Docker-Content-Digest"])
    wait_for("both signatures listed", lambda: sorted(referrers(edge, repo, subject)) == sorted(pushed))
    r = edge.request("DELETE", f"/v2/{repo}/manifests/{pushed[0]}")
    assert r.status_code == 202, r.text
    wait_for("the deleted signature unlisted", lambda: referrers(edge, repo, subject) == [pushed[1]])


def test_a_repository_pushed_straight_to_the_origin_appears_after_a_rebuild(edge, origin):
    repo = f"past/the/edge{os.getpid()}"
    images = Path(env("STACK_DIR"), "images")
    r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{images / 'busybox'}:1", f"docker://{origin.addr}/{repo}:v1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert repo not in catalog(edge)[0], "the index did not see a push that did not pass through the edge"
    status = rebuilt(edge)
    assert repo in catalog(edge)[0]
    assert status["rebuild"]["repositoriesIndexed"] >= 1
    assert cli_json(edge, "index", "status")["rebuild"]["run"] == status["rebuild"]["run"]


def test_a_large_registry_pages_in_bounded_storage_requests(scale):
    reg = scale["reg"]
    # Before the index: a walk (over 2,000 listings), with a warning.
    r, walked = storage_requests(reg, "/v2/_catalog?n=100")
    assert r.status_code == 200 and len(r.json()["repositories"]) == 100
    assert "not built" in r.headers.get("Warning", ""), r.headers
    assert walked > SCALE_REPOS, walked
    subject, repo = scale["subject"], scale["subjectRepository"]
    r, scanned = storage_requests(reg, f"/v2/{repo}/referrers/{subject}")
    assert len(r.json()["manifests"]) == SIGNATURES and "Warning" in r.headers
    assert scanned >= MANY, scanned

    status = rebuilt(reg, seconds=600)
    assert status["catalog"]["repositories"] == SCALE_REPOS + 31
    assert status["rebuild"]["referrersFound"] == SIGNATURES

    for path in ("/v2/_catalog?n=100", "/v2/_catalog?n=100&last=gen%2Frepo01234",
                 "/v2/_catalog?n=1000&last=gen%2Frepo00999"):
        r, count = storage_requests(reg, path)
        assert r.status_code == 200 and "Warning" not in r.headers, r.headers
        assert count <= 2, f"{path}: {count} storage requests"
    r, count = storage_requests(reg, "/v2/_catalog?n=5&last=gen%2Frepo01234")
    assert r.json()["repositories"] == [f"gen/repo{i:05d}" for i in range(1235, 1240)]
    r, count = storage_requests(reg, f"/v2/{repo}/referrers/{subject}")
    assert len(r.json()["manifests"]) == SIGNATURES and "Warning" not in r.headers
    assert count <= 2, count   # the subject's object (and the root's completeness, once)
    r, count = storage_requests(reg, f"/v2/{repo}/referrers/{subject}")
    assert count == 1, count
    names, pages = catalog(reg)
    assert len(names) == SCALE_REPOS + 31 and names == sorted(names, key=lambda n: n.split("/"))


def test_a_team_token_pages_its_part_of_a_large_registry(scale):
    reg = scale["reg"]
    indexed(reg)
    cli(reg, "scope-map", "delete", "gen-team-map", check=False)
    cli(reg, "scope-map", "create", "gen-team-map", "--action", "repositories/gen/team/*/metadata/read")
    cli(reg, "token", "delete", "gen-team", check=False)
    created = cli_json(reg, "token", "create", "gen-team", "--scope-map", "gen-team-map")
    auth = ("gen-team", created["credentials"]["passwords"][0]["password"])
    try:
        names, pages = catalog(reg, auth=auth, n=10)
        assert names == [f"gen/team/app{i:05d}" for i in range(30)]
        # Every page reads the root and at most four shards, so a page can come back short (even
        # empty) with a Link to go on from; no page reads the whole index.
        before = s3_log_lines()
        catalog(reg, auth=auth, n=10)
        assert (s3_log_lines() - before) <= len(pages) * 5 + 2 * len(pages)
        assert len(pages) >= 3
    finally:
        cli(reg, "token", "delete", "gen-team", check=False)
        cli(reg, "scope-map", "delete", "gen-team-map", check=False)


def test_an_index_object_edited_by_hand_is_detected_and_rebuilt(edge):
    client = s3_client()
    root_key = "origin/registry-edge/index/catalog.json"
    root = client.get_object(Bucket="registry", Key=root_key)["Body"].read()
    doc = json.loads(root)
    first = doc["shards"][0]["first"]
    # A repository slipped into the catalog by hand: the root's checksum no longer holds.
    doc["shards"][0]["first"] = "aaa/slipped-in"
    client.put_object(Bucket="registry", Key=root_key, Body=json.dumps(doc).encode())
    r = get(edge, "/v2/_catalog?n=5")
    assert r.status_code == 200
    assert "aaa/slipped-in" not in r.json()["repositories"], "a walk's answer, not the edited index's"
    assert "failed its checks" in r.headers.get("Warning", ""), r.headers
    # The edge asked for a rebuild itself; once done, the index answers again.
    def mended():
        status = cli_json(edge, "index", "status")
        return status["rebuild"]["phase"] == "done" and \
            status["rebuild"]["reason"].startswith("the catalog index failed") and status["catalog"]["complete"]
    wait_for("the index rebuilt", mended, seconds=300)
    r = get(edge, "/v2/_catalog?n=5")
    assert "Warning" not in r.headers, r.headers
    assert r.json()["repositories"][0] == first
