#!/usr/bin/env bash
# Build a Debian bookworm base image tarball without any registry, from the host's own
# apt sources (no mirror is named here on purpose), with the CPython build
# dependencies already inside so the image build needs no network.
# usage: make-base.sh OUTPUT.tar
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
include=$(grep -v '^#' "$here/build-deps.txt" | paste -sd, -)
mmdebstrap --variant=minbase --include="$include" bookworm "$out"
