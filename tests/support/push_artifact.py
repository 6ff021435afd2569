#!/usr/bin/env python3
"""Pushes an OCI 1.1 artifact (a small SBOM) with the oras client.

usage: push_artifact.py REGISTRY [REPO:TAG]   (default artifacts/sbom:v1)
Credentials, if the registry wants any: REGISTRY_USER and REGISTRY_PASSWORD.

oras-py's push() has no artifactType argument, so the blobs go through the
client's upload_blob() and the manifest, with `artifactType` and the empty
config descriptor, through upload_manifest().
"""
import hashlib
import json
import os
import sys
import tempfile

import oras.client

ARTIFACT_TYPE = "application/vnd.example.sbom.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def descriptor(path: str, media_type: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data)}


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    registry = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) > 2 else "artifacts/sbom:v1"
    if os.environ.get("REGISTRY_USER"):
        # Basic credentials on each request: oras-py's token backend (0.2.x) keeps the first token
        # it is given whatever its scope, so a pull-scoped token would be reused for the pushes.
        client = oras.client.OrasClient(hostname=registry, insecure=True, auth_backend="basic")
        client.auth.set_basic_auth(os.environ["REGISTRY_USER"], os.environ["REGISTRY_PASSWORD"])
    else:
        client = oras.client.OrasClient(hostname=registry, insecure=True)
    container = client.get_container(f"{registry}/{target}")

    with tempfile.TemporaryDirectory() as tmp:
        sbom_path = os.path.join(tmp, "sbom.json")
        with open(sbom_path, "w") as f:
            json.dump({"name": "busybox", "version": "1.35.0",
                       "packages": [{"name": "busybox-static", "license": "GPL-2.0"}]}, f,
                      sort_keys=True)
        empty_path = os.path.join(tmp, "empty.json")
        with open(empty_path, "w") as f:
            f.write("{}")

        layer = descriptor(sbom_path, ARTIFACT_TYPE)
        layer["annotations"] = {"org.opencontainers.image.title": "sbom.json"}
        config = descriptor(empty_path, EMPTY_TYPE)
        for path, desc in ((sbom_path, layer), (empty_path, config)):
            client._check_200_response(client.upload_blob(path, container, desc))

        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": config,
            "layers": [layer],
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
        resp = client.upload_manifest(manifest, container)
        client._check_200_response(resp)
    print(f"push_artifact: {registry}/{target} ({ARTIFACT_TYPE}) "
          f"{resp.headers.get('Docker-Content-Digest', '')}")


if __name__ == "__main__":
    main()
