#!/usr/bin/env python3
"""Pushes an OCI 1.1 referrer (a small signature artifact whose `subject` is REPO:TAG) by digest,
so that it adds no tag.

usage: push_referrer.py REGISTRY REPO TAG [ARTIFACT_TYPE]
Credentials, if the registry wants any: REGISTRY_USER and REGISTRY_PASSWORD.
"""
import json
import sys

import requests

from registry_push import env_auth, push_blob, push_manifest

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    registry, repo, tag = sys.argv[1:4]
    artifact_type = sys.argv[4] if len(sys.argv) > 4 else "application/vnd.example.signature.v1+json"
    base = f"http://{registry}"
    subject = requests.get(f"{base}/v2/{repo}/manifests/{tag}", auth=env_auth(),
                           headers={"Accept": f"{MANIFEST}, {INDEX}"}, timeout=30)
    subject.raise_for_status()
    signature = json.dumps({"signed": subject.headers["Docker-Content-Digest"]}).encode()
    empty = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": push_blob(base, repo, empty), "size": len(empty)},
        "layers": [{"mediaType": artifact_type, "digest": push_blob(base, repo, signature),
                    "size": len(signature)}],
        "subject": {"mediaType": subject.headers["Content-Type"],
                    "digest": subject.headers["Docker-Content-Digest"],
                    "size": len(subject.content)},
        "annotations": {"org.example.signer": "registry-edge tests"},
    }
    digest = push_manifest(base, repo, None, json.dumps(manifest).encode(), MANIFEST)
    print(f"push_referrer: {registry}/{repo}@{digest} -> {tag} ({artifact_type})")


if __name__ == "__main__":
    main()
