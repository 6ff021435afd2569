"""Pushing blobs and manifests to a registry over the plain OCI API (no client library), for the
fixtures and the tests that need content of their own. Credentials: the `auth` argument, else
REGISTRY_USER and REGISTRY_PASSWORD from the environment (sent as Basic), else none."""
import hashlib
import os
import urllib.parse

import requests


def env_auth() -> tuple[str, str] | None:
    user, password = os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
    return (user, password) if user and password else None


def push_blob(base: str, repo: str, data: bytes, auth=None) -> str:
    """POST an upload, PUT its content with the digest; returns the digest."""
    auth = auth or env_auth()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/", auth=auth, verify=False, timeout=30)
    r.raise_for_status()
    location = urllib.parse.urljoin(base, r.headers["Location"])
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=data, auth=auth, verify=False,
                     headers={"Content-Type": "application/octet-stream"}, timeout=30)
    r.raise_for_status()
    return digest


def push_manifest(base: str, repo: str, reference: str | None, body: bytes, media_type: str,
                  auth=None) -> str:
    """PUT a manifest by tag (or by its digest when `reference` is None); returns the digest."""
    auth = auth or env_auth()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    r = requests.put(f"{base}/v2/{repo}/manifests/{reference or digest}", data=body, auth=auth,
                     verify=False, headers={"Content-Type": media_type}, timeout=30)
    r.raise_for_status()
    return digest
