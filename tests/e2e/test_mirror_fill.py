"""Mirror fills ("mode": "mirror"): the edge at $EDGE_FILL copies what it reads through its
upstreams into storage (its own tree, /mirror) through its queue, and the edge at
$EDGE_FILL_GONE, on the same storage with its upstream gone, then serves it: manifests from
storage, blobs as 307s to presigned storage URLs.

  fill.test     tests/support/fake-upstream.py in front of the htpasswd docker-registry (stopped
                or cutting blob bodies when told to), copied in parts of 5 MiB
  direct.test   the docker-registry itself, in the default parts of 64 MiB (the large layer)

Real clients (skopeo) read both edges; digests must be the upstream's.
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

from conftest import (MIB, OCI_ACCEPT, UPSTREAM_BASIC_AUTH, Generated, Registry, edge_registry, env,
                      fake, generated_digest, peak_rss_mib, wait_for)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

BASIC = UPSTREAM_BASIC_AUTH
LARGE_MIB = int(os.environ.get("LARGE_MIRROR_MIB", "600"))


@pytest.fixture(scope="module")
def fill() -> Registry:
    return edge_registry("edge-fill", "EDGE_FILL", tls=False)


@pytest.fixture(scope="module")
def gone() -> Registry:
    return edge_registry("edge-fill-gone", "EDGE_FILL_GONE", tls=False)



def manifest(reg: Registry, repo: str, reference: str) -> requests.Response:
    return reg.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_ACCEPT})


def blobs_of(reg: Registry, repo: str, reference: str) -> list[str]:
    """Every blob the image `repo:reference` references (an index's images too)."""
    r = manifest(reg, repo, reference)
    assert r.status_code == 200, f"{reg.name} {repo}:{reference}: {r.status_code} {r.text}"
    m = r.json()
    if "manifests" in m:
        return [b for child in m["manifests"] for b in blobs_of(reg, repo, child["digest"])]
    return [m["config"]["digest"]] + [layer["digest"] for layer in m["layers"]]


def stored(reg: Registry, repo: str, digest: str) -> bool:
    """Whether `reg` answers the blob with a redirect to the edge's storage (it holds it)."""
    with reg.request("GET", f"/v2/{repo}/blobs/{digest}", stream=True) as r:
        return r.status_code == 307 and r.headers["Location"].startswith(
            env("S3_ENDPOINT") + "/registry/mirror/")


def skopeo_copy(reg: Registry, ref: str, dest: Path):
    user, password = reg.auth
    r = subprocess.run(["skopeo", "--insecure-policy", "copy", "--all", "--src-tls-verify=false",
                        "--src-creds", f"{user}:{password}", f"docker://{reg.addr}/{ref}",
                        f"oci:{dest}:x"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def raw_digest(reg: Registry, repo: str, reference: str) -> str:
    r = manifest(reg, repo, reference)
    assert r.status_code == 200, f"{reg.name}: {r.status_code} {r.text}"
    return "sha256:" + hashlib.sha256(r.content).hexdigest()


@pytest.mark.parametrize("ref", ["library/busybox:1", "multi/arch:latest"])
def test_a_pull_fills_storage_and_storage_serves_it_when_the_upstream_is_gone(fill, gone, upstream, ref, tmp_path, faulty):
    repo, tag = ref.rsplit(":", 1)
    # Nothing of it is stored yet: the edge without an upstream has nothing to serve.
    r = manifest(gone, f"fill.test/{repo}", tag)
    assert r.status_code in (502, 503, 504), r.text
    skopeo_copy(fill, f"fill.test/{ref}", tmp_path / "first")
    blobs = blobs_of(upstream, repo, tag)
    wait_for("every blob stored", lambda: all(stored(gone, f"fill.test/{repo}", b) for b in blobs))
    # The tag is stored last, once all it leads to is (its job waits, retried after 10 s).
    wait_for("the tag stored", lambda: manifest(gone, f"fill.test/{repo}", tag).status_code == 200)
    # The upstream stops: the second pull is served wholly from storage, by an edge that never
    # saw the upstream (its cache is empty).
    fake("mode?set=down")
    r = manifest(gone, f"fill.test/{repo}", tag)
    assert r.status_code == 200, r.text
    assert "may be stale" in r.headers.get("Warning", ""), r.headers
    assert raw_digest(gone, f"fill.test/{repo}", tag) == raw_digest(upstream, repo, tag)
    for b in blobs:
        assert stored(gone, f"fill.test/{repo}", b), b
    skopeo_copy(gone, f"fill.test/{ref}", tmp_path / "second")
    index = json.loads((tmp_path / "second" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == raw_digest(upstream, repo, tag)
    # And the edge that filled it serves it too, the upstream stopped.
    skopeo_copy(fill, f"fill.test/{ref}", tmp_path / "third")
    # The catalog lists what the mirror stored.
    r = gone.request("GET", "/v2/_catalog")
    assert f"fill.test/{repo}" in r.json()["repositories"], r.text


def random_image(upstream: Registry, repo: str, layer: bytes) -> tuple[str, list[str]]:
    """Pushes a one-layer image to the upstream as `repo:1`; its manifest digest and blobs."""
    base = f"http://{upstream.addr}"
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo,
                         "nonce": os.urandom(8).hex()}).encode()
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": push_blob(base, repo, config, auth=BASIC), "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": push_blob(base, repo, layer, auth=BASIC), "size": len(layer)}]}
    body = json.dumps(m).encode()
    digest = push_manifest(base, repo, "1", body, m["mediaType"], auth=BASIC)
    return digest, [m["config"]["digest"], m["layers"][0]["digest"]]


def test_an_interrupted_copy_links_nothing_and_is_retried(fill, gone, upstream, faulty):
    layer = os.urandom(12 * MIB + 4321)  # three parts of 5 MiB
    _, (config, blob) = random_image(upstream, "fill/interrupted", layer)
    fake("mode?set=cut")
    # The read through the edge queues the fill; the upstream cuts every blob half-way.
    r = manifest(fill, "fill.test/fill/interrupted", "1")
    assert r.status_code == 200, r.text
    wait_for("a cut blob body", lambda: any(line.startswith("CUT ") and blob in line
                                              for line in fake("log")), 60)
    time.sleep(2)
    # Nothing unverified is linked: neither edge serves the layer from storage.
    assert not stored(gone, "fill.test/fill/interrupted", blob)
    assert not stored(gone, "fill.test/fill/interrupted", config)
    # The upstream is whole again: the job's next attempt (after its delay) copies it.
    fake("mode?set=pass")
    wait_for("the layer stored", lambda: stored(gone, "fill.test/fill/interrupted", blob), 90)
    r = gone.request("GET", f"/v2/fill.test/fill/interrupted/blobs/{blob}")
    assert r.status_code == 307, r.text
    stored_bytes = requests.get(r.headers["Location"], timeout=60).content
    assert hashlib.sha256(stored_bytes).hexdigest() == blob.split(":")[1]


def test_fills_on_the_r2_binding(upstream, faulty):
    """The mirror on the R2 binding: its fills go through the binding's multipart uploads. What it
    holds it serves as 307s, which it does only for a blob linked in the repository whose data
    R2 has (it asks R2 for the size first)."""
    r2 = edge_registry("edge-fill-r2", "EDGE_FILL_R2", tls=False)
    layer = os.urandom(11 * MIB + 17)  # three parts of 5 MiB
    _, blobs = random_image(upstream, "fill/r2", layer)
    r = manifest(r2, "fill.test/fill/r2", "1")
    assert r.status_code == 200, r.text
    def redirected(b: str) -> bool:
        with r2.request("GET", f"/v2/fill.test/fill/r2/blobs/{b}", stream=True) as r:
            return r.status_code == 307

    for b in blobs:
        wait_for(f"{b} in R2", lambda: redirected(b))
    r = r2.request("HEAD", f"/v2/fill.test/fill/r2/blobs/{blobs[1]}")
    assert int(r.headers["Content-Length"]) == len(layer)
    r = r2.request("GET", "/v2/_catalog")
    assert "fill.test/fill/r2" in r.json()["repositories"], r.text


def test_a_large_layer_is_copied_in_parts_with_the_memory_flat(fill, gone, upstream):
    large = Generated(0, LARGE_MIB)
    digest = generated_digest(LARGE_MIB)
    base = f"http://{upstream.addr}"
    r = requests.post(f"{base}/v2/fill/large/blobs/uploads/", auth=BASIC, timeout=30)
    assert r.status_code == 202, r.text
    location = requests.compat.urljoin(base, r.headers["Location"])
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=large, auth=BASIC, timeout=600,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    config = b'{"architecture":"amd64","os":"linux"}'
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": push_blob(base, "fill/large", config, auth=BASIC), "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest,
                     "size": len(large)}]}
    push_manifest(base, "fill/large", "1", json.dumps(m).encode(), m["mediaType"], auth=BASIC)

    before = peak_rss_mib("edge-fill")
    start = time.monotonic()
    r = manifest(fill, "direct.test/fill/large", "1")
    assert r.status_code == 200, r.text
    wait_for("the large layer stored", lambda: stored(gone, "direct.test/fill/large", digest), 600)
    seconds = time.monotonic() - start
    grown = peak_rss_mib("edge-fill") - before
    print(f"\nmirror fill of {LARGE_MIB} MiB in parts of 64 MiB: {seconds:.1f} s "
          f"({LARGE_MIB / seconds:.0f} MiB/s), workerd peak RSS grew {grown:.0f} MiB")
    # Streamed, never held: the copy's cost in memory does not grow with the layer (here 23 to
    # 40 MiB, the runtime's own buffers and heap growth; a layer held whole would be 600).
    assert grown < LARGE_MIB / 5, f"workerd peak RSS grew {grown:.0f} MiB copying {LARGE_MIB} MiB"
    # What storage holds is the layer, whole: its size, and a download that hashes to it.
    r = gone.request("HEAD", f"/v2/direct.test/fill/large/blobs/{digest}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(large), r.headers
