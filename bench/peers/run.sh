#!/usr/bin/env bash
# Runs the peer benchmarks in every environment setup.sh made ready.
#
# Usage: run.sh ENV_ROOT OUT_DIR [--quick] [--only W1,W2] [--repeats N] [--systems S1,S2]
#
# --systems keeps only the listed system-modes of ENV_ROOT/available.txt (e.g. ray-native).
# Writes OUT_DIR/<system>-<mode>.json for every line of ENV_ROOT/available.txt, e.g.
# unidist-pyseq.json, unidist-mpi-openmpi-spawn.json, ray-native.json. Each run is bounded by
# `timeout` (PEER_RUN_TIMEOUT seconds, default 600, 120 with --quick) and lives in its own
# process group, which is killed afterwards so no worker or MPI process outlives its run.
# A run that fails, crashes or hangs still leaves a JSON file whose rows say what happened.
# OUT_DIR/summary.txt lists one line per run: file, exit status, seconds.
set -u

if [ $# -lt 2 ]; then
    echo "usage: run.sh ENV_ROOT OUT_DIR [--quick] [--only W1,W2] [--repeats N] [--systems S1,S2]" >&2
    exit 2
fi
ENV_ROOT=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: ENV_ROOT '$1' does not exist (run setup.sh first)" >&2; exit 2; }
OUT_DIR=$2
shift 2
EXTRA=()
QUICK=0
SYSTEMS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; EXTRA+=(--quick) ;;
        --only|--repeats)
            [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
            EXTRA+=("$1" "$2"); shift ;;
        --systems)
            [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
            SYSTEMS=",$2,"; shift ;;
        *) echo "run.sh: unknown argument '$1' (accepted: --quick, --only W1,W2, --repeats N, --systems S1,S2)" >&2; exit 2 ;;
    esac
    shift
done

HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPT="$HERE/workloads.py"
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR=$(cd "$OUT_DIR" && pwd)
AVAILABLE="$ENV_ROOT/available.txt"
if [ $QUICK -eq 1 ]; then
    RUN_TIMEOUT=${PEER_RUN_TIMEOUT:-120}
else
    RUN_TIMEOUT=${PEER_RUN_TIMEOUT:-600}
fi
CPUS=${PEER_CPUS:-$(nproc)}
EXIT_GRACE=${PEER_EXIT_GRACE:-10}
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"

if [ ! -s "$AVAILABLE" ] || ! grep -q -v '^#' "$AVAILABLE"; then
    echo "[peers-run] no peer environment available (see $AVAILABLE): nothing to run"
    echo "# no peer environment available" >"$SUMMARY"
    exit 0
fi

# Workers (Ray, Dask, MPI-spawned ranks) import the task functions from workloads.py.
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
# Keep the source directory free of __pycache__ written by the many interpreters a run starts.
export PYTHONDONTWRITEBYTECODE=1
export UNIDIST_CPUS=$CPUS

# finish_json FILE SYSTEM MODE EXIT_STATUS: makes FILE a complete result whatever happened.
finish_json() {
    "$PY" - "$@" <<'EOF'
import json, os, sys
path, system, mode, rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
note = sys.argv[5] if len(sys.argv) > 5 else ""
how = "killed by the run time limit" if rc in (124, 137) else f"process exited with status {rc}"
try:
    with open(path) as fh:
        doc = json.load(fh)
except (OSError, ValueError):
    doc = {"system": system, "mode": mode, "versions": {}, "machine": {}, "rows": []}
doc["exit_status"] = rc
if note:
    doc["exit_note"] = note
if doc.get("status") != "done":
    doc["status"] = f"incomplete: {how}"
names = ["async_empty_tasks", "sync_round_trip", "put_get_small", "put_get_large",
         "task_sum_large", "actor_async_calls", "actor_sync_call", "cpu_scaling", "nested_fib",
         "vec_f64_by_ref", "buffer_f64_by_ref", "bytes_round_trip", "string_round_trip",
         "big_object"]
if not doc["rows"]:
    doc["rows"] = [{"workload": w, "unit": None, "median": None, "min": None, "max": None,
                    "runs": [], "status": "pending"} for w in names]
for row in doc["rows"]:
    if row["status"] == "running":
        row["status"] = "timeout" if rc in (124, 137) else f"failed: {how}"
    elif row["status"] == "pending":
        row["status"] = f"not run: {how}"
tmp = path + ".tmp"
with open(tmp, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
os.replace(tmp, path)
EOF
}

# run_one NAME ENV COMMAND...: runs one system-mode in its own session under the time limit.
run_one() {
    local name=$1 env=$2
    shift 2
    local out="$OUT_DIR/$name.json" log="$OUT_DIR/$name.log"
    PY="$ENV_ROOT/$env/bin/python"
    rm -f "$out"
    echo "[peers-run] $name (env $env, limit ${RUN_TIMEOUT}s)"
    local start=$SECONDS
    # setsid gives the run its own process group, so everything it started can be ended by id.
    setsid -w timeout -k 10 "$RUN_TIMEOUT" "$@" --out "$out" "${EXTRA[@]}" </dev/null >"$log" 2>&1 &
    local pid=$! done_at="" note=""
    # A runtime that hangs in its shutdown (seen with MPI spawn) would cost the whole time limit
    # after its report is complete; once the report says "done" it gets EXIT_GRACE seconds.
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$done_at" ] && grep -q '^  "status": "done"' "$out" 2>/dev/null; then
            done_at=$SECONDS
        fi
        if [ -n "$done_at" ] && [ $((SECONDS - done_at)) -ge "$EXIT_GRACE" ]; then
            note="finished, then did not exit within ${EXIT_GRACE}s; killed"
            kill -KILL -- "-$pid" 2>/dev/null
            break
        fi
        sleep 0.5
    done
    wait $pid
    local rc=$?
    kill -TERM -- "-$pid" 2>/dev/null && sleep 2
    kill -KILL -- "-$pid" 2>/dev/null
    finish_json "$out" "${name%%-*}" "${name#*-}" "$rc" "$note"
    echo "$name.json exit=$rc seconds=$((SECONDS - start))${note:+ ($note)}" >>"$SUMMARY"
    grep -E '^\[[a-z]' "$log" | sed 's/^/    /'
    [ $rc -eq 0 ] || echo "    exit status $rc (log: $log)"
}

OMPI_ENV=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
          OMPI_MCA_rmaps_base_oversubscribe=1 UNIDIST_CPUS=2 UNIDIST_MPI_SPAWN=True)

while read -r name env; do
    case "$name" in ''|'#'*) continue ;; esac
    if [ -n "$SYSTEMS" ] && [ "${SYSTEMS#*,"$name",}" = "$SYSTEMS" ]; then
        continue
    fi
    py="$ENV_ROOT/$env/bin/python"
    case "$name" in
        unidist-pyseq|unidist-pymp|unidist-ray|unidist-dask)
            run_one "$name" "$env" "$py" "$SCRIPT" --system unidist --backend "${name#unidist-}" \
                --cpus "$CPUS" ;;
        unidist-mpi-openmpi-spawn)
            # Spawn mode: one process starts, unidist spawns the monitor and UNIDIST_CPUS workers.
            run_one "$name" "$env" "${OMPI_ENV[@]}" mpiexec.openmpi -n 1 "$py" "$SCRIPT" \
                --system unidist --backend mpi --mode mpi-openmpi-spawn --cpus 2 ;;
        unidist-mpi-mpich-spmd)
            # SPMD mode: rank 0 runs the workloads, rank 1 is the monitor, ranks 2-3 are workers.
            run_one "$name" "$env" env UNIDIST_MPI_SPAWN=False mpiexec.mpich -n 4 "$py" "$SCRIPT" \
                --system unidist --backend mpi --mode mpi-mpich-spmd --cpus 2 ;;
        ray-native)
            run_one "$name" "$env" "$py" "$SCRIPT" --system ray --cpus "$CPUS" ;;
        dask-native)
            run_one "$name" "$env" "$py" "$SCRIPT" --system dask --cpus "$CPUS" ;;
        *)
            echo "[peers-run] unknown system-mode '$name' in $AVAILABLE, skipped" ;;
    esac
done <"$AVAILABLE"

echo "[peers-run] results in $OUT_DIR"
exit 0
