# Sourced by tools/dist_{train,test,pretrain}.sh: the interpreter, the one-time input check, and a
# launch whose errors read as one line, that survives a lost rank and stops cleanly on a signal.
#   PYTHON       the checkout's .venv/bin/python when it exists, else python on PATH ($PYTHON wins)
#   MAX_RESTARTS how many times torchrun may restart the ranks after one is lost (killed, crashed,
#                its node gone): every restart resumes from the newest complete checkpoint by
#                itself, with one line "restarted after a lost rank (restart k/N): ...".
#                Default 3; 0: a lost rank ends the job. A rank that stops on an `error:` line,
#                a bug or a signal is not restarted (the restart would fail the same way).
#   dist_launch SCRIPT GPUS ARGS...
#                runs `SCRIPT ARGS --check-only` once (one-line error, exit 2, no rank started),
#                then torchrun with GPUS processes. Only the first `error:` line is shown: it
#                is the rank that failed first (a user error ends a rank with one line, exit 2,
#                through mmtransfer.cli.run); later ones are its consequences: the same line
#                from other ranks, or gloo's "Connection closed by peer" of a rank whose peer
#                stopped, which is shown only when nothing else failed. A `warning:` line
#                printed by every rank is shown once, and torchrun's own log lines and failure
#                report (closing signals, ChildFailedError and its banner) are dropped; a rank
#                lost for good is said in one `error:` line. --debug shows everything. Exit
#                status: 128 + the signal when SIGTERM / SIGUSR1 / SIGINT / SIGHUP came to this
#                script, else 2 when a rank failed with an `error:` line, else torchrun's.
# Signals: SIGTERM and SIGUSR1 (slurm's --signal, preemption, the time limit), to this script, to
# its process group or to every process of the job, are passed on to every rank by torchrun:
# training writes a checkpoint at the end of the current iteration and stops
# (docs/fault-tolerance.md). torchrun waits TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (default 30)
# before it kills the ranks. SIGINT and SIGHUP are passed on too.
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

check_max_restarts() {
    MAX_RESTARTS=${MAX_RESTARTS:-3}
    if ! [[ $MAX_RESTARTS =~ ^[0-9]+$ ]]; then
        echo "error: MAX_RESTARTS must be an integer >= 0 (restarts after a lost rank), got" \
             "'$MAX_RESTARTS'" >&2
        exit 2
    fi
}

# Waits for the background process PID, passing SIGTERM, SIGUSR1, SIGINT and SIGHUP on to it
# (bash runs a trap only between commands, never while a foreground command runs: hence the
# background). Sets SIGNALLED to the number of the last signal passed on; returns PID's exit
# status.
wait_passing_signals() {
    local pid=$1 sig
    SIGNALLED=0
    for sig in TERM USR1 INT HUP; do
        # shellcheck disable=SC2064  # $pid and $sig now
        trap "SIGNALLED=$(kill -l "$sig"); kill -s $sig $pid 2>/dev/null" "$sig"
    done
    while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
    trap - TERM USR1 INT
    wait "$pid"  # its exit status (bash keeps it)
}

dist_launch() {
    local script=$1 gpus=$2
    shift 2
    check_gpus "$gpus"
    check_max_restarts
    PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "$PYTHON" "$script" "$@" --check-only || exit $?
    local debug=0 arg
    for arg in "$@"; do [ "$arg" = --debug ] && debug=1; done
    # torchrun in a process group of its own: a signal to this script's group (kill -- -PGID, a
    # terminal's Ctrl-C) then reaches it once, passed on by wait_passing_signals. Twice, the
    # second interrupts torchrun's shutdown, and it sends the ranks SIGTERM in its place.
    local own_group='import os, sys; os.setpgid(0, 0)
os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", *sys.argv[1:]])'
    local torchrun=("$PYTHON" -c "$own_group"
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}"
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}"
        --max-restarts="$MAX_RESTARTS" --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1
        --nproc_per_node="$gpus" "$script" "$@" --launcher pytorch)
    local status
    if [ $debug = 1 ]; then
        PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "${torchrun[@]}" &
        wait_passing_signals $!
        status=$?
        [ "$SIGNALLED" != 0 ] && return $((128 + SIGNALLED))
        return $status
    fi
    # stderr through the filter (which ignores the signals: it reads until the last rank has
    # exited); stdout untouched
    local fifo filter
    fifo=$(mktemp -d) || exit 1
    mkfifo "$fifo/stderr" || exit 1
    ( trap '' TERM USR1 INT
      exec awk -v max_restarts="$MAX_RESTARTS" '
        held != "" {  # a traceback: a rank'"'"'s (a bug), or torchrun'"'"'s failure report (to the end)
            h = held; held = ""
            if ($0 ~ /<frozen runpy>|torch\/distributed\//) dump = 1
            else { bug = 1; print h }
        }
        dump { next }
        /^[IWEF][0-9][0-9][0-9][0-9] [0-9:.]+ +[0-9]+ [^ ]*torch\/distributed\/elastic\// {
            if (match($0, /failed \(exitcode: -[0-9]+\) local_rank: [0-9]+/)) {
                n = split(substr($0, RSTART, RLENGTH), f, /[ )]+/)
                lost = "error: rank " f[n] " on this node was lost (killed by signal " \
                       substr(f[3], 2) ") and no restart is left (MAX_RESTARTS=" max_restarts ")"
            }
            next
        }
        /^restarted after a lost rank/ { peer = ""; lost = "" }
        /^error: .*Connection (closed|reset) by peer/ { if (peer == "") peer = $0; next }
        /^error: / { if (errors++) next }
        /Traceback \(most recent call last\)/ { held = $0; next }
        /^warning: / { if (seen[$0]++) next }
        { print; fflush() }
        END {
            if (held != "") { bug = 1; print held }
            if (!errors && !bug && lost != "") print lost
            else if (!errors && !bug && peer != "") print peer
            exit errors ? 2 : 0
        }' <"$fifo/stderr" >&2 ) &
    filter=$!
    PYTHONPATH="$REPO_ROOT:${PYTHONPATH:-}" "${torchrun[@]}" 2>"$fifo/stderr" &
    wait_passing_signals $!
    status=$?
    wait $filter
    local filtered=$?
    rm -rf "$fifo"
    if [ "$SIGNALLED" != 0 ]; then return $((128 + SIGNALLED)); fi
    if [ "$status" != 0 ] && [ $filtered = 2 ]; then return 2; fi
    return "$status"
}
