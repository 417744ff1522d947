#!/bin/sh
# LiteFS's first exec step, run as root before the app drops to its own user: Fly
# mounts the volume owned by root (0755), where an unprivileged app can create nothing.
# Gives the app user everything on the volume except LiteFS's own files (LiteFS runs
# as root and the app must not be able to rewrite them), and closes the volume to
# everyone else. Usage: vidprod-prepare-volume UID DATA_DIR LITEFS_DATA_DIR
set -eu
owner=$1
data=$2
litefs=$3
mkdir -p "$data"
# -h: a symlink the app user left must not make root chown what it points to
find "$data" -xdev -path "$litefs" -prune -o ! -user "$owner" -exec chown -h "$owner:$owner" {} +
chmod 0700 "$data"
