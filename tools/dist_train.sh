#!/usr/bin/env bash
# Distributed training, as mmdet's tools/dist_train.sh:
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# e.g. tools/dist_train.sh configs/faster_rcnn_voc.py 8 --backbone work_dirs/pretrain/dense_distill/backbone.pth
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Python: $PYTHON (default: python on PATH).

if [ $# -lt 2 ]; then
    echo "error: usage: $(basename "$0") CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
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
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
