#!/usr/bin/env bash
# Distributed testing, as mmdet's tools/dist_test.sh:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# e.g. tools/dist_test.sh configs/faster_rcnn_voc.py work_dirs/faster_rcnn_voc/epoch_4.pth 8
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Python: the checkout's .venv, or $PYTHON.
# The inputs (config, checkpoint, data roots) are checked once before any rank starts.
source "$(dirname "$0")/dist_common.sh"
if [ $# -lt 3 ]; then
    echo "error: usage: $(basename "$0") CONFIG CHECKPOINT GPUS [test.py args...]" >&2
    exit 2
fi
dist_launch "$REPO_ROOT/tools/test.py" "$3" "$1" "$2" "${@:4}"
