#!/usr/bin/env bash
# Multi-GPU / multi-node pretraining, like mmdet's dist_train.sh:
#   tools/dist_pretrain.sh METHOD GPUS [pretrain/train.py args]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_pretrain.sh dense_distill 8
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "error: usage: $0 METHOD GPUS [args...]" >&2; exit 2
fi
METHOD=$1
GPUS=$2
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: GPUS must be a positive integer, got '$GPUS'" >&2; exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
cd "$(dirname "$0")/.."
# the repository's virtualenv (make install) unless PYTHON names another interpreter
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    pretrain/train.py --method "$METHOD" --launcher pytorch "${@:3}"
