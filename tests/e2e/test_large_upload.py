"""A large layer pushed through the edge, on a workerd of its own, in one PATCH and in chunks:
the worker's memory stays flat (the body is streamed, never buffered), and the throughput is
recorded beside a push of the same bytes straight to the origin.

LARGE_BLOB_MIB (default 256) sets the size; scripts/bench runs it with 1024."""
import os
import time
import urllib.parse

import requests

from conftest import MIB, Generated, Registry, edge_registry, generated_digest, peak_rss_mib

SIZE_MIB = int(os.environ.get("LARGE_BLOB_MIB", "256"))


def push(reg: Registry, repo: str, chunk_mib: int | None) -> float:
    """Pushes SIZE_MIB MiB to `repo`, in one PATCH (chunk_mib None) or in chunks; returns MiB/s."""
    digest = generated_digest(SIZE_MIB)
    start = time.monotonic()
    r = reg.http.post(f"{reg.url}/v2/{repo}/blobs/uploads/", timeout=60)
    assert r.status_code == 202, r.text
    location = urllib.parse.urljoin(reg.url, r.headers["Location"])
    chunk = chunk_mib or SIZE_MIB
    for offset in range(0, SIZE_MIB, chunk):
        n = min(chunk, SIZE_MIB - offset)
        headers = {"Content-Type": "application/octet-stream"}
        if chunk_mib:
            headers["Content-Range"] = f"{offset * MIB}-{(offset + n) * MIB - 1}"
        r = reg.http.patch(location, data=Generated(offset, n), headers=headers, timeout=600)
        assert r.status_code == 202, r.text
        location = urllib.parse.urljoin(reg.url, r.headers["Location"])
    sep = "&" if "?" in location else "?"
    r = reg.http.put(f"{location}{sep}digest={urllib.parse.quote(digest)}", timeout=600)
    assert r.status_code == 201, r.text
    seconds = time.monotonic() - start
    assert r.headers["Docker-Content-Digest"] == digest
    return SIZE_MIB / seconds


def test_large_upload_streams_through_the_edge(origin):
    edge = edge_registry("edge-big", "EDGE_BIG", tls=False)
    assert edge.request("GET", "/v2/").status_code == 200
    before = peak_rss_mib("edge-big")
    direct = push(origin, "large/direct", None)
    one_patch = push(edge, "large/one-patch", None)
    chunked = push(edge, "large/chunked", 64)
    after = peak_rss_mib("edge-big")
    print(f"\nlarge upload {SIZE_MIB} MiB: origin direct {direct:.0f} MiB/s, through the edge "
          f"{one_patch:.0f} MiB/s (one PATCH), {chunked:.0f} MiB/s (64 MiB chunks); "
          f"edge workerd peak memory {before:.0f} MiB before, {after:.0f} MiB after")
    # Streamed, not buffered: far less growth than the blob's size.
    assert after - before < min(96, SIZE_MIB / 2), (before, after)
    size = edge.request("HEAD", f"/v2/large/chunked/blobs/{generated_digest(SIZE_MIB)}")
    assert size.headers["Content-Length"] == str(SIZE_MIB * MIB)
