#!/usr/bin/env bash
# Prove, without a GPU, that `FORCE_CUDA=1 make install` builds mmcv with its CUDA ops.
#   tools/check_cuda_build.sh [auto|system|pip] [SCRATCH_DIR]
# Clones HEAD into SCRATCH_DIR (default /tmp/mmtransfer-cuda-<mode>), runs
# `FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} make install` there with
# MMTRANSFER_CUDA_TOOLCHAIN=<mode>, then checks the result: mmcv compiled with torch's CUDA, CUDA
# kernel launchers in mmcv/_ext, and a second install that does nothing.
set -euo pipefail
mode=${1:-auto}
scratch=${2:-/tmp/mmtransfer-cuda-$mode}
repo=$(cd "$(dirname "$0")/.." && pwd)
export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MMTRANSFER_CUDA_TOOLCHAIN=$mode
rm -rf "$scratch"
git clone -q "$repo" "$scratch"
cd "$scratch"
start=$(date +%s)
make install
echo "cuda-build-check: make install took $(( $(date +%s) - start )) s (toolchain: $mode)"
.venv/bin/python - <<'PY'
import json, pathlib, sys
import mmcv, mmcv.ops, torch
sys.path.insert(0, 'tools')
from install_mmcv import MARKER, cuda_kernel_symbols
ext = sorted(pathlib.Path(mmcv.__file__).parent.glob('_ext*.so'))[0]
symbols = cuda_kernel_symbols(ext)
built = json.loads((pathlib.Path(sys.prefix) / MARKER).read_text())
cuda = mmcv.ops.get_compiling_cuda_version()
print(f'cuda-build-check: mmcv {mmcv.__version__} compiled with CUDA {cuda} (torch {torch.version.cuda}), '
      f'{len(symbols)} CUDA launchers in {ext.name}, e.g. {[s for s in symbols if "NMS" in s or "ROIAlign" in s][:3]}; marker {built}')
assert cuda == torch.version.cuda and len(symbols) > 100, (cuda, len(symbols))
from mmcv.ops import nms
dets, keep = nms(torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]), torch.tensor([.9, .8, .7]), 0.5)
assert keep.tolist() == [0, 2], keep
print('cuda-build-check: nms on CPU tensors ok')
PY
start=$(date +%s)
make install
echo "cuda-build-check: second make install took $(( $(date +%s) - start )) s (a no-op)"
