"""Run by scripts/test after it stopped the origin: pulls of what is already in the object store
keep working through the edge; writes fail fast with 502 and an OCI error body."""
import os
import time

import pytest
import requests

from conftest import error_codes

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

pytestmark = pytest.mark.skipif(os.environ.get("ORIGIN_DOWN") != "1",
                                reason="needs the origin stopped (scripts/test does it)")


def test_reads_survive_the_origin(edge_http):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{os.environ['ORIGIN']}/v2/", timeout=5)
    r = edge_http.request("GET", "/v2/multi/arch/manifests/latest", {"Accept": ACCEPT})
    assert r.status_code == 200
    layer = edge_http.request("GET", "/v2/library/busybox/manifests/1", {"Accept": ACCEPT}).json()["layers"][0]
    blob = edge_http.request("GET", f"/v2/library/busybox/blobs/{layer['digest']}")
    assert blob.status_code == 307
    assert requests.get(blob.headers["Location"], timeout=30).status_code == 200
    assert "library/busybox" in edge_http.request("GET", "/v2/_catalog").json()["repositories"]


def test_writes_fail_fast_with_502(edge_http):
    start = time.monotonic()
    r = edge_http.request("POST", "/v2/library/busybox/blobs/uploads/")
    assert r.status_code == 502
    assert error_codes(r) == ["UPSTREAM_UNREACHABLE"]
    assert "unreachable" in r.json()["errors"][0]["message"]
    assert time.monotonic() - start < 30
