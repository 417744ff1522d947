#!/bin/sh
# What the runtime image weighs, measured without a Docker engine (none on the build
# machines, and Docker Hub's base images cannot be pulled here): the venv that
# deploy/install.sh builds from exactly the build stage's COPY sources, the Debian
# packages the runtime stage adds to python:3.11-slim-bookworm (apt's Installed-Size),
# and the base image and LiteFS binary at their published sizes.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
work=$top/app
# the build stage's COPY sources (the stage between the first and second FROM)
sources=$(awk '/^FROM /{stage++} stage==1 && /^COPY / && !/--from/ {for (i = 2; i < NF; i++) print $i}' "$here/Dockerfile")
for source in $sources; do
    mkdir -p "$(dirname "$work/$source")"
    cp -r "$here/$source" "$work/$source"
done
find "$work" -name __pycache__ -prune -exec rm -rf {} +  # .dockerignore leaves them out
export UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy  # as the build stage's ENV
"$work/deploy/install.sh" "$work" >"$top/install.log" 2>&1 ||
    { cat "$top/install.log" >&2; exit 1; }
app=$(du -sm "$work" | cut -f1)  # /app in the image: the venv and the sources

closure() {
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$@" | grep -v '^[ <]' | sort -u
}
runtime=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"/\1/p' "$here/Dockerfile")
base=$(grep -v '^#' "$here/deploy/base-image-packages.txt")
closure $runtime >"$top/runtime.txt"
closure $base >"$top/base.txt"
added=$(comm -23 "$top/runtime.txt" "$top/base.txt")
kb=0
for package in $added; do
    size=$(apt-cache show --no-all-versions "$package" | sed -n 's/^Installed-Size: //p')
    kb=$((kb + size))
done
packages=$((kb / 1024))
base_mb=125    # python:3.11-slim-bookworm, uncompressed
litefs_mb=40   # /usr/local/bin/litefs from flyio/litefs:0.5
echo "image: ~$((app + packages + base_mb + litefs_mb)) MB = /app (venv with bytecode) $app MB + Debian packages $packages MB" \
     "($(echo $added | wc -w) added to the base) + python:3.11-slim-bookworm ~$base_mb MB + LiteFS ~$litefs_mb MB"
du -sm "$work/.venv/lib/python3.11/site-packages/"* | sort -rn | head -8
