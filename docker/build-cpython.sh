#!/usr/bin/env bash
# The one CPython build recipe, used by the Docker backend (inside the image build) and
# by the native backend (on the host).
# usage: build-cpython.sh TARBALL PREFIX [CONFIGURE_ARG...]
# Prints "::gilbench-phase:: NAME" before each phase so callers can show progress.
set -euo pipefail

tarball=$1
prefix=$2
shift 2
jobs=${JOBS:-$(nproc)}
phase() { echo "::gilbench-phase:: $1"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

phase extract
tar -xf "$tarball" -C "$work" --strip-components=1
cd "$work"

phase configure
./configure --prefix="$prefix" "$@"

pgo=no
for arg in "$@"; do [ "$arg" = --enable-optimizations ] && pgo=yes; done
if [ "$pgo" = yes ]; then
    # Drive CPython's own profile-opt targets one by one, so each phase is visible and
    # a failed training run can be retried: since 3.13 a failing test in `-m test --pgo`
    # stops the build, and such failures happen by chance (test_generators was seen).
    phase instrumented-build
    make -j"$jobs" profile-gen-stamp
    phase pgo-training
    if ! make profile-run-stamp 2>&1 | tee "$work/pgo-training.log"; then
        failed=$(grep -oE 'test_[A-Za-z0-9_.]+ failed' "$work/pgo-training.log" \
                 | cut -d' ' -f1 | sort -u | paste -sd' ' - || true)
        echo "::gilbench-warning:: PGO training run failed (${failed:-no test named}); retrying once"
        make profile-run-stamp
    fi
    phase final-build
else
    phase build
fi
make -j"$jobs"

phase install
make install
# The smoke check (host side) runs next; nothing of the build tree is kept.
