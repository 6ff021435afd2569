"""A private origin (Basic auth): the edge answers its challenge with its own credentials, and
clients never see them, nor the origin's challenge."""
import json
import sys
from pathlib import Path

import requests

from conftest import Registry, edge_registry, env, error_codes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from registry_push import push_blob, push_manifest  # noqa: E402

OCI = "application/vnd.oci.image.manifest.v1+json"


def test_pushes_reach_a_private_origin_with_the_edges_credentials():
    origin = Registry("origin-auth", env("ORIGIN_AUTH"), tls=False)
    edge = edge_registry("edge-auth", "EDGE_AUTH", tls=False)
    assert origin.request("GET", "/v2/").status_code == 401
    config = push_blob(edge.url, "private/app", b"{}", auth=edge.auth)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI, "layers": [],
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": config, "size": 2}}).encode()
    digest = push_manifest(edge.url, "private/app", "v1", body, OCI, auth=edge.auth)
    r = edge.request("GET", "/v2/private/app/manifests/v1", {"Accept": OCI})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    # The origin holds it, behind its credentials.
    r = requests.get(f"{origin.url}/v2/private/app/manifests/v1", auth=("edge", "origin-password"),
                     headers={"Accept": OCI}, timeout=30)
    assert r.headers["Docker-Content-Digest"] == digest


def test_wrong_origin_credentials_are_a_502_that_leaks_nothing():
    edge = edge_registry("edge-badauth", "EDGE_BADAUTH", tls=False)
    r = edge.request("POST", "/v2/private/app/blobs/uploads/")
    assert r.status_code == 502
    assert error_codes(r) == ["UPSTREAM_ERROR"]
    assert "ORIGIN_USERNAME" in r.json()["errors"][0]["message"]
    assert "WWW-Authenticate" not in r.headers
    assert "wrong" not in r.text and env("ORIGIN_AUTH") not in r.text
