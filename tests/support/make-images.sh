#!/usr/bin/env bash
# Builds the test images offline (umoci + busybox-static) as OCI layouts:
#
#   OUTDIR/busybox  tags: 1    single-arch image, one layer (/bin/busybox)
#                         app  the same plus a second layer (/app/hello.txt)
#   OUTDIR/multi    tags: amd64, arm64 (one image each, different content)
#                         latest  an OCI image index over the two
#
# Use with `skopeo copy oci:OUTDIR/busybox:1 ...` (`--all` for multi:latest).
# Usage: tests/support/make-images.sh OUTDIR
set -euo pipefail

out="${1:?usage: make-images.sh OUTDIR}"
busybox_bin="${BUSYBOX:-/bin/busybox}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$busybox_bin" ] || { echo "make-images: no $busybox_bin (apt busybox-static)" >&2; exit 1; }
command -v umoci >/dev/null || { echo "make-images: umoci not installed (scripts/install)" >&2; exit 1; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Fixed timestamps: the same busybox gives the same digests on every run.
created="2024-01-01T00:00:00Z"
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)

# add_layer IMAGE:TAG SRC: a new layer with SRC's contents added at "/".
# (unpack + repack: `umoci insert` 0.4.7 writes tar streams without their
# end-of-archive blocks, which unpacking clients reject.)
add_layer() {
  local image="$1" src="$2" bundle
  bundle="$work/bundle-$RANDOM$RANDOM"
  umoci unpack "${rootless[@]}" --image "$image" "$bundle" >/dev/null
  cp -a "$src/." "$bundle/rootfs/"
  find "$bundle/rootfs" -exec touch -h -d "$created" {} +
  umoci repack --image "$image" --history.created "$created" "$bundle"
  rm -rf "$bundle"
}

# new_image LAYOUT TAG ARCH: an image whose single layer holds /bin/busybox,
# /bin/sh and /etc/image-arch.
new_image() {
  local layout="$1" tag="$2" arch="$3" root="$work/rootfs-$2"
  mkdir -p "$root/bin" "$root/etc"
  cp "$busybox_bin" "$root/bin/busybox"
  ln -sf busybox "$root/bin/sh"
  echo "$arch" >"$root/etc/image-arch"
  umoci new --image "$layout:$tag"
  add_layer "$layout:$tag" "$root"
  umoci config --image "$layout:$tag" --created "$created" --history.created "$created" \
    --os linux --architecture "$arch" \
    --config.entrypoint /bin/busybox --config.cmd sh
}

# (a) single-arch image plus a two-layer variant.
rm -rf "$out/busybox"
umoci init --layout "$out/busybox"
new_image "$out/busybox" 1 amd64
umoci tag --image "$out/busybox:1" app
mkdir -p "$work/app/app"
echo "hello from team/app/service" >"$work/app/app/hello.txt"
add_layer "$out/busybox:app" "$work/app"
umoci config --image "$out/busybox:app" --created "$created" --history.created "$created" \
  --config.cmd cat --config.cmd /app/hello.txt

# (b) two real images and an OCI index over them.
rm -rf "$out/multi"
umoci init --layout "$out/multi"
new_image "$out/multi" amd64 amd64
new_image "$out/multi" arm64 arm64
python3 "$here/oci_index.py" "$out/multi" latest amd64:linux/amd64 arm64:linux/arm64

umoci gc --layout "$out/busybox"
umoci gc --layout "$out/multi"
echo "make-images: OCI layouts in $out: busybox:{1,app} multi:{amd64,arm64,latest(index)}"
