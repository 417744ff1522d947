#!/bin/sh
# What the runtime image carries on top of python:3.11-slim: the venv that
# deploy/install.sh builds (runtime dependencies only), largest packages first.
# There is no Docker engine on the build machines, so this measures the same install.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/pyproject.toml" "$here/uv.lock" "$here/README.md" "$here/LICENSE" "$here/vidprod" "$here/deploy" "$work/"
"$work/deploy/install.sh" "$work" >/dev/null 2>&1
echo "venv: $(du -sm "$work/.venv" | cut -f1) MB (python:3.11-slim adds ~125 MB, litefs ~40 MB, fuse3 ~2 MB)"
du -sm "$work/.venv/lib/python3.11/site-packages/"* | sort -rn | head -8
