#!/usr/bin/env bash
# Builds Bulkhead's OCI image FROM scratch out of this host's own files, with
# umoci: no base image is pulled and no registry is reached. The image holds
# the bulkhead binary, exactly the shared libraries it links (from ldd), the
# CA bundle (for alert webhooks), the built console, and a passwd entry for
# the controller's non-root user (65532).
#
#   scripts/build-image.sh [--binary PATH] [--tag TAG] LAYOUT_DIR
#
# LAYOUT_DIR becomes an OCI image layout holding bulkhead:TAG. Push it with
#   skopeo copy oci:LAYOUT_DIR:TAG docker://REGISTRY/bulkhead:TAG
# or load it with `podman load -i` from a tar of the directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

binary="$here/target/release/bulkhead"
tag="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    -*) echo "build-image: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($# == 1)) || { echo "usage: build-image.sh [--binary PATH] [--tag TAG] LAYOUT_DIR" >&2; exit 2; }
layout=$1

command -v umoci >/dev/null || { echo "build-image: umoci missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
[[ -x $binary ]] || { echo "build-image: no binary at $binary (cargo build --release -p bulkhead)" >&2; exit 1; }
console="$here/ui/dist"
[[ -f $console/index.html ]] || { echo "build-image: the console is not built (scripts/build-console.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"

install -D -m 0755 "$binary" "$root/usr/local/bin/bulkhead"
# Every library the dynamic loader would map, at the path it looks in.
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }')
[[ -n $libs ]] || { echo "build-image: ldd found no libraries in $binary" >&2; exit 1; }
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
mkdir -p "$root/usr/share/bulkhead"
cp -r "$console" "$root/usr/share/bulkhead/console"
printf 'root:x:0:0:root:/root:/sbin/nologin\nbulkhead:x:65532:65532:bulkhead:/var/lib/bulkhead:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nbulkhead:x:65532:\n' >"$root/etc/group"
install -d -m 1777 "$root/tmp"
install -d -m 0755 "$root/var/lib/bulkhead" "$root/run/bulkhead"

umoci repack --image "$layout:$tag" "$work/bundle"
umoci config --image "$layout:$tag" \
  --config.entrypoint /usr/local/bin/bulkhead \
  --config.user 65532:65532 \
  --config.workingdir / \
  --config.env PATH=/usr/local/bin \
  --config.label "org.opencontainers.image.title=bulkhead" \
  --config.label "org.opencontainers.image.version=$tag" \
  --config.label "org.opencontainers.image.description=Bulkhead agent, controller and console"
umoci gc --layout "$layout"
echo "build-image: $layout:$tag ($(du -sh "$layout" | cut -f1))" >&2
