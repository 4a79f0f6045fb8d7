#!/usr/bin/env bash
# Distributed training, as mmdet's tools/dist_train.sh:
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# e.g. tools/dist_train.sh configs/faster_rcnn_voc.py 8 --backbone work_dirs/pretrain/dense_distill/backbone.pth
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Python: the checkout's .venv, or $PYTHON.
# The inputs (config, backbone, data roots, --resume) are checked once before any rank starts.
# A lost rank is restarted (MAX_RESTARTS, default 3) and resumes by itself; SIGTERM / SIGUSR1
# write a checkpoint and stop (docs/fault-tolerance.md).
source "$(dirname "$0")/dist_common.sh"
if [ $# -lt 2 ]; then
    echo "error: usage: $(basename "$0") CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
dist_launch "$REPO_ROOT/tools/train.py" "$2" "$1" "${@:3}"
