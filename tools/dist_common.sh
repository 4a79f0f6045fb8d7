# Sourced by tools/dist_{train,test,pretrain}.sh: the interpreter, the one-time input check, and a
# launch whose errors read as one line.
#   PYTHON       the checkout's .venv/bin/python when it exists, else python on PATH ($PYTHON wins)
#   dist_launch SCRIPT GPUS ARGS...
#                runs `SCRIPT ARGS --check-only` once (one-line error, exit 2, no rank started),
#                then torchrun with GPUS processes. Only the first `error:` line is shown: it
#                is the rank that failed first (a user error ends a rank with one line, exit 2,
#                through mmtransfer.cli.run); later ones are its consequences: the same line
#                from other ranks, or gloo's "Connection closed by peer" of a rank whose peer
#                stopped, which is shown only when nothing else failed. A `warning:` line
#                printed by every rank is shown once, and torchrun's own failure report
#                (SIGTERM notices, ChildFailedError and its banner) is dropped; --debug shows
#                everything. Exit status: 2 when a rank failed with an `error:` line, else
#                torchrun's.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

check_gpus() {
    if ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
        echo "error: GPUS must be a positive integer, got '$1'" >&2
        exit 2
    fi
}

dist_launch() {
    local script=$1 gpus=$2
    shift 2
    check_gpus "$gpus"
    PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "$PYTHON" "$script" "$@" --check-only || exit $?
    local debug=0 arg
    for arg in "$@"; do [ "$arg" = --debug ] && debug=1; done
    if [ $debug = 1 ]; then
        PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run \
            --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
            --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
            --nproc_per_node="$gpus" "$script" "$@" --launcher pytorch
        return $?
    fi
    # stderr through the filter; stdout untouched
    local status
    { PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
        --nproc_per_node="$gpus" "$script" "$@" --launcher pytorch 2>&1 1>&3 3>&- \
        | awk '/elastic\/multiprocessing\/api\.py.*failed \(exitcode/ { dump = 1 }
               dump || /elastic\/multiprocessing\/api\.py.*closing signal/ { next }
               /^error: .*Connection (closed|reset) by peer/ { if (peer == "") peer = $0; next }
               /^error: / { if (errors++) next }
               /Traceback \(most recent call last\)/ { bug = 1 }
               /^warning: / { if (seen[$0]++) next }
               { print; fflush() }
               END { if (!errors && !bug && peer != "") print peer; exit errors ? 2 : 0 }' >&2
      status=("${PIPESTATUS[@]}"); } 3>&1
    if [ "${status[0]}" != 0 ] && [ "${status[1]}" = 2 ]; then return 2; fi
    return "${status[0]}"
}
