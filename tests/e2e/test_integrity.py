"""The edge never serves corrupt content: manifest bytes in storage that do not hash to their digest
give a 500 and a log line, never the bytes. Uses a repository of its own and the edge that reads the
S3 bucket directly, after overwriting the object the origin wrote."""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from conftest import error_codes, s3_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_corrupt_manifest_is_refused_and_logged(origin, edge_http):
    config = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
              "digest": push_blob(origin.url, "integrity/check", b"{}")}
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [],
                       "annotations": {"nonce": str(time.time_ns())}}).encode()
    digest = push_manifest(origin.url, "integrity/check", "v1", body, MANIFEST)
    hexpart = digest.split(":")[1]
    tampered = body.replace(b'"layers"', b'"LAYERS"')
    assert len(tampered) == len(body) and hashlib.sha256(tampered).hexdigest() != hexpart

    s3 = s3_client()
    key = f"origin/docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data"
    s3.put_object(Bucket="registry", Key=key, Body=tampered)

    for path in [f"/v2/integrity/check/manifests/{digest}", "/v2/integrity/check/manifests/v1"]:
        for method in ["GET", "HEAD"]:
            r = edge_http.request(method, path, {"Accept": MANIFEST})
            assert r.status_code == 500, (method, path)
            assert b"LAYERS" not in r.content
            if method == "GET":
                assert error_codes(r) == ["UNKNOWN"]
    log = Path(os.environ["STACK_DIR"], "edge-http.log").read_text()
    assert f"does not match its digest {digest}" in log
