#!/usr/bin/env bash
# Multi-GPU / multi-node pretraining, like mmdet's dist_train.sh:
#   tools/dist_pretrain.sh METHOD GPUS [pretrain/train.py args]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_pretrain.sh dense_distill 8
# Python: the checkout's .venv, or $PYTHON. The inputs (config, data roots, --resume) are
# checked once before any rank starts. A lost rank is restarted (MAX_RESTARTS, default 3) and
# resumes by itself; SIGTERM / SIGUSR1 write a checkpoint and stop (docs/fault-tolerance.md).
source "$(dirname "$0")/dist_common.sh"
if [ $# -lt 2 ]; then
    echo "error: usage: $(basename "$0") METHOD GPUS [args...]" >&2
    exit 2
fi
dist_launch "$REPO_ROOT/pretrain/train.py" "$2" --method "$1" "${@:3}"
