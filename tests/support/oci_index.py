#!/usr/bin/env python3
"""Adds a multi-arch OCI image index to an OCI image layout.

usage: oci_index.py LAYOUT TAG REF:OS/ARCH [REF:OS/ARCH ...]

Each REF is a tag already in LAYOUT (an image manifest). The index lists them
with their platforms and is tagged TAG (replacing an older TAG).
"""
import hashlib
import json
import os
import sys

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    layout, tag, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    index_path = os.path.join(layout, "index.json")
    with open(index_path) as f:
        top = json.load(f)
    by_ref = {d.get("annotations", {}).get(REF_NAME): d for d in top["manifests"]}

    manifests = []
    for spec in specs:
        ref, platform = spec.split(":", 1)
        os_name, arch = platform.split("/", 1)
        if ref not in by_ref:
            sys.exit(f"oci_index: no tag {ref} in {layout}")
        d = by_ref[ref]
        manifests.append({
            "mediaType": d.get("mediaType", MANIFEST_TYPE),
            "digest": d["digest"],
            "size": d["size"],
            "platform": {"architecture": arch, "os": os_name},
        })

    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": manifests,
    }, indent=2).encode()
    digest = hashlib.sha256(body).hexdigest()
    blob = os.path.join(layout, "blobs", "sha256", digest)
    with open(blob, "wb") as f:
        f.write(body)

    top["manifests"] = [d for d in top["manifests"]
                        if d.get("annotations", {}).get(REF_NAME) != tag]
    top["manifests"].append({
        "mediaType": INDEX_TYPE,
        "digest": f"sha256:{digest}",
        "size": len(body),
        "annotations": {REF_NAME: tag},
    })
    with open(index_path + ".tmp", "w") as f:
        json.dump(top, f)
    os.replace(index_path + ".tmp", index_path)
    print(f"oci_index: {layout}:{tag} -> sha256:{digest} ({len(manifests)} manifests)")


if __name__ == "__main__":
    main()
