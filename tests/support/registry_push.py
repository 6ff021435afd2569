"""Pushing blobs and manifests to a registry over the plain OCI API (no client library), for the
fixtures and the tests that need content of their own."""
import hashlib
import urllib.parse

import requests


def push_blob(base: str, repo: str, data: bytes) -> str:
    """POST an upload, PUT its content with the digest; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
    r.raise_for_status()
    location = urllib.parse.urljoin(base, r.headers["Location"])
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={digest}", data=data,
                     headers={"Content-Type": "application/octet-stream"}, timeout=30)
    r.raise_for_status()
    return digest


def push_manifest(base: str, repo: str, reference: str | None, body: bytes, media_type: str) -> str:
    """PUT a manifest by tag (or by its digest when `reference` is None); returns the digest."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    r = requests.put(f"{base}/v2/{repo}/manifests/{reference or digest}", data=body,
                     headers={"Content-Type": media_type}, timeout=30)
    r.raise_for_status()
    return digest
