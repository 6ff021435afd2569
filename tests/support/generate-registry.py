#!/usr/bin/env python3
"""Writes a registry straight into the bucket, in distribution's storage layout, as the origin
would have written it by pushes: fast (thousands of repositories in seconds), for the tests and
the benchmark of the indexes.

    generate-registry.py ROOT --repos N [--prefix gen/repo] [--manifests M --repo NAME]
                               [--referrers K]

  ROOT        the storage root (the origin's rootdirectory), e.g. /scale
  --repos N   N repositories PREFIX00000 .. each with one image manifest tagged v1
  --manifests M --repo NAME
              one repository NAME with M image manifests, tagged v0 .. v(M-1)
  --referrers K
              K of NAME's manifests (or of the first repository's) are signatures whose subject
              is its first manifest

S3_ENDPOINT, S3_BUCKET and the AWS_* variables name the bucket (scripts/lib.sh's _stack_py sets
them). Prints one JSON line: what was written (the subject's digest, the names).
"""

import argparse
import concurrent.futures
import hashlib
import json
import os

import boto3

EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    def __init__(self, root: str):
        root = root.strip("/")
        self.root = f"{root}/docker/registry/v2" if root else "docker/registry/v2"

    def blob(self, d: str) -> str:
        hex_ = d.split(":", 1)[1]
        return f"{self.root}/blobs/sha256/{hex_[:2]}/{hex_}/data"

    def repo(self, name: str) -> str:
        return f"{self.root}/repositories/{name}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--repos", type=int, default=0)
    p.add_argument("--prefix", default="gen/repo")
    p.add_argument("--manifests", type=int, default=0)
    p.add_argument("--repo", default="gen/many")
    p.add_argument("--referrers", type=int, default=0)
    args = p.parse_args()

    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
    bucket = os.environ["S3_BUCKET"]
    layout = Layout(args.root)
    objects: dict[str, bytes] = {}

    config = b"{}"
    layer = b"generated layer"
    objects[layout.blob(digest(config))] = config
    objects[layout.blob(digest(layer))] = layer
    # The empty descriptor's blob, which signatures name as their config.
    objects[layout.blob(EMPTY)] = b"{}"

    def manifest(name: str, i: int, subject: dict | None = None) -> str:
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer),
                    "size": len(layer),
                }
            ],
            "annotations": {"org.example.generated": f"{name}#{i}"},
        }
        if subject:
            body["artifactType"] = "application/vnd.example.signature"
            body["config"] = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY, "size": 2}
            body["layers"] = []
            body["subject"] = subject
        data = json.dumps(body, separators=(",", ":")).encode()
        d = digest(data)
        hex_ = d.split(":", 1)[1]
        base = layout.repo(name)
        objects[layout.blob(d)] = data
        objects[f"{base}/_manifests/revisions/sha256/{hex_}/link"] = d.encode()
        objects[f"{base}/_layers/sha256/{hex_}/link"] = d.encode()
        for blob in (config, layer):
            objects[f"{base}/_layers/sha256/{digest(blob).split(':', 1)[1]}/link"] = digest(blob).encode()
        if not subject:
            tag = f"v{i}" if args.manifests and name == args.repo else "v1"
            objects[f"{base}/_manifests/tags/{tag}/current/link"] = d.encode()
            objects[f"{base}/_manifests/tags/{tag}/index/sha256/{hex_}/link"] = d.encode()
        return d

    names = [f"{args.prefix}{i:05d}" for i in range(args.repos)]
    firsts = {name: manifest(name, 0) for name in names}
    if args.manifests:
        for i in range(args.manifests):
            d = manifest(args.repo, i)
            firsts.setdefault(args.repo, d)
    target = args.repo if args.manifests else (names[0] if names else None)
    subject = None
    if args.referrers and target:
        first = firsts[target]
        first_bytes = objects[layout.blob(first)]
        subject = {"mediaType": OCI_MANIFEST, "digest": first, "size": len(first_bytes)}
        for k in range(args.referrers):
            manifest(target, 100_000 + k, subject)

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(put, objects.items()))
    print(json.dumps({
        "objects": len(objects),
        "repositories": len(names) + (1 if args.manifests else 0),
        "subject": subject["digest"] if subject else None,
        "subjectRepository": target if subject else None,
    }))


if __name__ == "__main__":
    main()
