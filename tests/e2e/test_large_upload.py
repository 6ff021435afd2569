"""A large layer pushed through the edge, on a workerd of its own, in one PATCH and in chunks:
the worker's memory stays flat (the body is streamed, never buffered), and the throughput is
recorded beside a push of the same bytes straight to the origin.

LARGE_BLOB_MIB (default 256) sets the size; scripts/bench runs it with 1024."""
import hashlib
import os
import time
import urllib.parse
from pathlib import Path

import requests

from conftest import Registry, edge_registry, env

MIB = 1 << 20
SIZE_MIB = int(os.environ.get("LARGE_BLOB_MIB", "256"))
BLOCK = os.urandom(MIB)


class Body:
    """`count_mib` MiB from `offset_mib` on, generated as sent (each MiB the random block with its
    index in front); its length is known, so it goes out with a Content-Length."""

    def __init__(self, offset_mib: int, count_mib: int):
        self.offset, self.count = offset_mib, count_mib

    def __len__(self) -> int:
        return self.count * MIB

    def __iter__(self):
        for i in range(self.offset, self.offset + self.count):
            yield i.to_bytes(8, "big") + BLOCK[8:]


def body(offset_mib: int, count_mib: int) -> Body:
    return Body(offset_mib, count_mib)


def digest_of(count_mib: int) -> str:
    h = hashlib.sha256()
    for part in body(0, count_mib):
        h.update(part)
    return "sha256:" + h.hexdigest()


def peak_rss_mib(name: str) -> float:
    pid = Path(env("STACK_DIR"), f"{name}.workerd-pid").read_text().split()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def push(reg: Registry, repo: str, chunk_mib: int | None) -> float:
    """Pushes SIZE_MIB MiB to `repo`, in one PATCH (chunk_mib None) or in chunks; returns MiB/s."""
    digest = digest_of(SIZE_MIB)
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
        r = reg.http.patch(location, data=body(offset, n), headers=headers, timeout=600)
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
    size = edge.request("HEAD", f"/v2/large/chunked/blobs/{digest_of(SIZE_MIB)}")
    assert size.headers["Content-Length"] == str(SIZE_MIB * MIB)
