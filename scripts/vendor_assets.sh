#!/usr/bin/env bash
# Refresh the front-end files vendored under callcenter/web/static/vendor/ from the npm
# registry, at the pinned versions below (no CDN, no build step at run time).
#
#   scripts/vendor_assets.sh           fetch the pinned versions and check their integrity
#   HTMX_VERSION=2.0.12 scripts/vendor_assets.sh   try another version (then pin it here)
#
# `npm pack` downloads the package's tarball and prints its sha512 integrity, which must
# equal the one pinned here: a tarball changed under the same version is refused.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION="${HTMX_VERSION:-2.0.11}"
HTMX_INTEGRITY="${HTMX_INTEGRITY:-sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==}"
# Apache ECharts: the supervisor's report charts (heatmap, reference lines), Apache-2.0
ECHARTS_VERSION="${ECHARTS_VERSION:-5.6.0}"
ECHARTS_INTEGRITY="${ECHARTS_INTEGRITY:-sha512-oTbVTsXfKuEhxftHqL5xprgLoc0k7uScAwtryCgWF6hPYFLRwOUHiFmHGCBKP5NPFNkDVopOieyUqYGH8Fa3kA==}"

dest=callcenter/web/static/vendor/htmx
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent --json "htmx.org@${HTMX_VERSION}" >pack.json)
integrity="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$work/pack.json")"
if [ "$integrity" != "$HTMX_INTEGRITY" ]; then
    echo "htmx.org@${HTMX_VERSION}: integrity $integrity, pinned $HTMX_INTEGRITY" >&2
    echo "(a new version: check it, then pin its integrity in $0)" >&2
    exit 1
fi
tar -xzf "$work"/htmx.org-"${HTMX_VERSION}".tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$work/package/LICENSE" "$dest/LICENSE"
printf 'htmx.org %s\nintegrity %s\nsource https://registry.npmjs.org/htmx.org/-/htmx.org-%s.tgz\n' \
    "$HTMX_VERSION" "$integrity" "$HTMX_VERSION" >"$dest/VERSION"
echo "vendored htmx.org@${HTMX_VERSION} into $dest"

# --- Apache ECharts ---------------------------------------------------------------------------
dest=callcenter/web/static/vendor/echarts
(cd "$work" && npm pack --silent --json "echarts@${ECHARTS_VERSION}" >echarts.json)
integrity="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$work/echarts.json")"
if [ "$integrity" != "$ECHARTS_INTEGRITY" ]; then
    echo "echarts@${ECHARTS_VERSION}: integrity $integrity, pinned $ECHARTS_INTEGRITY" >&2
    exit 1
fi
rm -rf "$work/package"
tar -xzf "$work"/echarts-"${ECHARTS_VERSION}".tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/echarts.min.js" "$dest/echarts.min.js"
cp "$work/package/LICENSE" "$dest/LICENSE"
cp "$work/package/NOTICE" "$dest/NOTICE"
printf 'echarts %s\nintegrity %s\nsource https://registry.npmjs.org/echarts/-/echarts-%s.tgz\n' \
    "$ECHARTS_VERSION" "$integrity" "$ECHARTS_VERSION" >"$dest/VERSION"
echo "vendored echarts@${ECHARTS_VERSION} into $dest"
