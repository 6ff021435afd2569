"""A private origin (Basic auth, or Docker token authentication with another edge as its token
service): the edge answers its challenge with its own credentials, and clients never see them,
nor the origin's challenge."""
import json
import sys
from pathlib import Path

import requests

from conftest import Registry, admin, edge_registry, env, error_codes

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


def test_pushes_reach_a_token_auth_origin_through_its_bearer_challenge():
    """distribution with `auth: token`, whose realm is another edge's token service: the edge in
    front gets a token with its credentials for the scope the origin names, and the origin
    verifies the token service's signature by the key id it names (libtrust's)."""
    origin_url = f"http://{env('ORIGIN_TOKEN')}"
    tokens_url = f"http://{env('EDGE_TOKENS')}"
    r = requests.get(f"{origin_url}/v2/", timeout=30)
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'realm="{tokens_url}/oauth2/token"' in challenge
    edge = edge_registry("edge-bearer", "EDGE_BEARER", tls=False)
    config = push_blob(edge.url, "bearer/app", b"{}", auth=edge.auth)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI, "layers": [],
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                  "digest": config, "size": 2}}).encode()
    digest = push_manifest(edge.url, "bearer/app", "v1", body, OCI, auth=edge.auth)
    r = edge.request("GET", "/v2/bearer/app/manifests/v1", {"Accept": OCI})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    r = edge.request("DELETE", f"/v2/bearer/app/manifests/{digest}")
    assert r.status_code == 202, r.text
    assert edge.request("GET", f"/v2/bearer/app/manifests/{digest}", {"Accept": OCI}).status_code == 404
    # Pushed again, it is on the origin, behind a token from the token service.
    digest = push_manifest(edge.url, "bearer/app", "v1", body, OCI, auth=edge.auth)
    manifest_url = f"{origin_url}/v2/bearer/app/manifests/v1"
    assert requests.get(manifest_url, headers={"Accept": OCI}, timeout=30).status_code == 401
    token = requests.get(f"{tokens_url}/oauth2/token", auth=admin(), timeout=30, params={
        "service": "origin-tokens", "scope": "repository:bearer/app:pull"}).json()["token"]
    r = requests.get(manifest_url, headers={"Accept": OCI, "Authorization": f"Bearer {token}"},
                     timeout=30)
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    # A token for another repository does not open it.
    other = requests.get(f"{tokens_url}/oauth2/token", auth=admin(), timeout=30, params={
        "service": "origin-tokens", "scope": "repository:other/app:pull"}).json()["token"]
    r = requests.get(manifest_url, headers={"Accept": OCI, "Authorization": f"Bearer {other}"},
                     timeout=30)
    assert r.status_code == 401
    # Refusals from the edge in front never carry the origin's challenge.
    r = requests.post(f"{edge.url}/v2/bearer/app/blobs/uploads/", timeout=30)
    assert r.status_code == 401
    assert env("EDGE_TOKENS") not in r.headers.get("WWW-Authenticate", "")
