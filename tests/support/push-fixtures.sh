#!/usr/bin/env bash
# Pushes the test fixtures to a registry over plain HTTP:
#
#   library/busybox:1          single-arch OCI image
#   library/busybox:{a,b,c,latest}  extra tags (tag list pagination)
#   multi/arch:latest          OCI index, amd64 + arm64 (skopeo copy --all)
#   docker/v2s2:1              the busybox image as Docker schema 2
#   team/app/service:v1        two-layer image, three path levels deep
#   artifacts/sbom:v1          oras artifact, artifactType application/vnd.example.sbom.v1+json
#   library/busybox@<digest>   a signature referring to library/busybox:1 (subject), untagged
#
# Usage: tests/support/push-fixtures.sh REGISTRY     e.g. 127.0.0.1:5000
# Credentials, if the registry wants any: REGISTRY_USER and REGISTRY_PASSWORD.
# Images come from tests/support/make-images.sh into $FIXTURES_DIR
# (default $STACK_DIR/images); built when missing.
set -euo pipefail

registry="${1:?usage: push-fixtures.sh REGISTRY (host:port)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
images="${FIXTURES_DIR:-${STACK_DIR:-$root/.stack}/images}"
venv="${REGISTRY_EDGE_CACHE:-$HOME/.cache/registry-edge}/venv"

if [ ! -f "$images/busybox/index.json" ] || [ ! -f "$images/multi/index.json" ]; then
  "$here/make-images.sh" "$images"
fi

creds=()
[ -z "${REGISTRY_USER:-}" ] || creds=(--dest-creds "$REGISTRY_USER:${REGISTRY_PASSWORD:-}")

copy() {
  echo "push-fixtures: ${*: -1}"
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false "${creds[@]}" "$@"
}

dest="docker://$registry"
copy "oci:$images/busybox:1" "$dest/library/busybox:1"
for tag in a b c latest; do
  copy "oci:$images/busybox:1" "$dest/library/busybox:$tag"
done
copy --all "oci:$images/multi:latest" "$dest/multi/arch:latest"
copy --format v2s2 "oci:$images/busybox:1" "$dest/docker/v2s2:1"
copy "oci:$images/busybox:app" "$dest/team/app/service:v1"
"$venv/bin/python" "$here/push_artifact.py" "$registry" artifacts/sbom:v1
"$venv/bin/python" "$here/push_referrer.py" "$registry" library/busybox 1
echo "push-fixtures: done"
