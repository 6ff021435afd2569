"""An edge whose storage endpoint and origin never answer (EDGE_HUNG: STORAGE_TIMEOUT_SECONDS=2,
ORIGIN_TIMEOUT_SECONDS=2, both pointing at a listener that accepts and stays silent): reads and
writes answer 504 in OCI JSON within the timeout, never hang the client."""
import time

from conftest import edge_registry, error_codes


def test_a_hung_store_and_a_hung_origin_are_504s():
    edge = edge_registry("edge-hung", "EDGE_HUNG", tls=False)
    # Control: what needs neither storage nor origin answers at once.
    assert edge.request("GET", "/v2/").status_code == 200
    for method, path, code in [
        ("GET", "/v2/library/busybox/manifests/1", "STORAGE_TIMEOUT"),
        ("GET", "/v2/library/busybox/tags/list", "STORAGE_TIMEOUT"),
        ("POST", "/v2/library/busybox/blobs/uploads/", "UPSTREAM_TIMEOUT"),
    ]:
        start = time.monotonic()
        r = edge.request(method, path)
        took = time.monotonic() - start
        assert r.status_code == 504, (method, path, r.status_code, r.text)
        assert error_codes(r) == [code], (method, path, r.text)
        assert 1.5 < took < 10, (method, path, took)
    # Nothing was cached from the failure: the next read waits for the store again.
    start = time.monotonic()
    assert edge.request("GET", "/v2/library/busybox/manifests/1").status_code == 504
    assert time.monotonic() - start > 1.5
