#!/usr/bin/env bash
# The one CPython build recipe, used by the Docker backend (inside the image build) and
# by the native backend (on the host).
# usage: build-cpython.sh TARBALL PREFIX [CONFIGURE_ARG...]
# environment: JOBS (make -j, default nproc); BUILD_DIR (where the sources are unpacked
#   and built, emptied first and removed at the end; default /usr/src/cpython);
#   SOURCE_DATE_EPOCH (default: the newest mtime among the tarball's files).
# Prints "::gilbench-phase:: NAME" before each phase so callers can show progress.
#
# Reproducible by design (https://reproducible-builds.org/docs/): two builds of the same
# tarball, flags and PREFIX install the same bytes, except where PGO's training run
# (timing-dependent profile counts) changes the compiler's choices. The measures, each
# recorded by gilbench in the build record (builders.REPRO_MEASURES):
# - a fixed build path (BUILD_DIR), not a random mktemp folder: configure's abs_builddir
#   lands in the installed Makefile and _sysconfigdata;
# - -ffile-prefix-map=BUILD_DIR=/usr/src/cpython, given to make as CFLAGS_NODIST so it
#   reaches every compile (the PGO targets append their own flags to it) without being
#   recorded for third-party extensions: __FILE__ and the debug info (-g is on by
#   default) name no host folder;
# - SOURCE_DATE_EPOCH: gcc's __DATE__/__TIME__ (sys.version's build date) and
#   py_compile, which then writes checked-hash .pyc instead of ones carrying the
#   install time as the source mtime;
# - PYTHONHASHSEED=0: set and frozenset ordering in code that the build marshals;
# - ARFLAGS=rcsD: ar's deterministic mode (zero uid/gid/mtime in libpython3.X.a).
set -euo pipefail

tarball=$1
prefix=$2
shift 2
jobs=${JOBS:-$(nproc)}
work=${BUILD_DIR:-/usr/src/cpython}
phase() { echo "::gilbench-phase:: $1"; }

case "$work" in
    /?*) ;;
    *) echo "BUILD_DIR must be an absolute path other than /, got '$work'" >&2; exit 2 ;;
esac
export PYTHONHASHSEED=0

rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

phase extract
tar -xf "$tarball" -C "$work" --strip-components=1
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(find "$work" -type f -printf '%T@\n' | sort -n | tail -n 1 | cut -d. -f1)
fi
export SOURCE_DATE_EPOCH
echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
cd "$work"

# Given to every make call, so a target that make decides to rebuild during install
# is compiled like the rest.
make_vars=(CFLAGS_NODIST="-ffile-prefix-map=$work=/usr/src/cpython" ARFLAGS=rcsD)

phase configure
./configure --prefix="$prefix" "$@"

pgo=no
for arg in "$@"; do [ "$arg" = --enable-optimizations ] && pgo=yes; done
if [ "$pgo" = yes ]; then
    # Drive CPython's own profile-opt targets one by one, so each phase is visible and a
    # failed training run can be explained (since 3.13 a failing test in `-m test --pgo`
    # stops the build).
    phase instrumented-build
    make -j"$jobs" "${make_vars[@]}" profile-gen-stamp
    phase pgo-training
    # test_generators.SignalAndYieldFromTest.test_raise_and_yield_from raises SIGINT and
    # fails when it is ignored, as in a background job of a non-interactive shell (`cmd &`,
    # nohup); bash cannot undo that for itself, so env (coreutils >= 8.31) puts SIGINT back
    # to its default for make and the training interpreter. gilbench's native builder
    # already starts this script so (gilbench/spawn.py); this covers the script run alone.
    run_training=(env)
    if env --default-signal=INT true 2>/dev/null; then run_training=(env --default-signal=INT); fi
    # No retry: the failure seen here ("test_generators failed", ENVIRONMENT.md) was this
    # ignored SIGINT, which fails every attempt the same way; a retry cost another training
    # run and, had it passed, would have merged the failed run's profile counts into the
    # build. Instead the failure is explained (gilbench.buildlog reads these lines):
    # `-m test --pgo` names the failed module but prints no test case or traceback, so the
    # failed modules run again verbosely with the same interpreter and signals. The build
    # has failed by then, so the profile counts that rerun adds do not matter.
    if ! "${run_training[@]}" make "${make_vars[@]}" profile-run-stamp 2>&1 \
            | tee "$work/pgo-training.log"; then
        failed=$(sed -n 's/^test \(test_[A-Za-z0-9_.]*\) failed.*/\1/p' "$work/pgo-training.log" \
                 | sort -u | paste -sd' ' - || true)
        mask=$("${run_training[@]}" sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status \
               2>/dev/null || true)
        sigint=unknown
        if [ -n "$mask" ]; then
            sigint=default
            (( 0x$mask & 2 )) && sigint=ignored
        fi
        echo "::gilbench-pgo-training:: failed modules: ${failed:-none named}"
        echo "::gilbench-pgo-training:: SIGINT in the training run: $sigint"
        if [ -n "$failed" ]; then
            echo "::gilbench-pgo-training:: running the failed modules again, verbosely"
            # shellcheck disable=SC2086  # one word per module
            LD_LIBRARY_PATH="$work${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
                "${run_training[@]}" ./python -m test --timeout=1200 -v $failed 2>&1 || true
            echo "::gilbench-pgo-training:: rerun done"
        fi
        exit 1
    fi
    phase final-build
else
    phase build
fi
make -j"$jobs" "${make_vars[@]}"

phase install
make "${make_vars[@]}" install
# The smoke check (host side) runs next; nothing of the build tree is kept.
