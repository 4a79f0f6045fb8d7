#!/usr/bin/env bash
# Distributed testing, as mmdet's tools/dist_test.sh:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# e.g. tools/dist_test.sh configs/faster_rcnn_voc.py work_dirs/faster_rcnn_voc/epoch_4.pth 8
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Python: $PYTHON (default: python on PATH).

if [ $# -lt 3 ]; then
    echo "error: usage: $(basename "$0") CONFIG CHECKPOINT GPUS [test.py args...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
if ! [[ $GPUS =~ ^[1-9][0-9]*$ ]]; then
    echo "error: GPUS must be a positive integer, got '$GPUS'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
