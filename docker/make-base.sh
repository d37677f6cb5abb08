#!/usr/bin/env bash
# Build a Debian bookworm base image tarball without any registry, with the CPython
# build dependencies already inside so the image build needs no network.
# Packages come from the host's own apt sources (its bookworm entries), so an offline
# host with an internal mirror works and no mirror is named here; a host without
# bookworm sources falls back to mmdebstrap's default.
# usage: make-base.sh OUTPUT.tar
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
include=$(grep -v '^#' "$here/build-deps.txt" | paste -sd, -)
sources=()
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] && grep -qw bookworm "$file" && sources+=("$file")
done
mmdebstrap --variant=minbase --include="$include" bookworm "$out" "${sources[@]}"
