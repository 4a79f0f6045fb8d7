"""The installed stack: mmcv compiled with its ops, on CPU tensors and, where torch sees a GPU,
compiled with CUDA and run on CUDA tensors (a CPU-only mmcv on a GPU machine fails here, not at
the detector's first RoIAlign after all of pretraining)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def test_mmcv_ops_import_in_a_fresh_interpreter():
    proc = subprocess.run([sys.executable, '-c', 'import mmcv.ops'], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def test_mmcv_ops_were_compiled_for_this_machine():
    from mmcv.ops import get_compiling_cuda_version

    compiled = get_compiling_cuda_version()
    if torch.cuda.is_available():
        assert compiled == torch.version.cuda, (
            f'mmcv compiled with CUDA {compiled!r} on a GPU machine (torch CUDA '
            f'{torch.version.cuda}): run `make install` to rebuild it with CUDA ops')
    else:
        assert compiled in ('not available', torch.version.cuda), compiled


@pytest.mark.parametrize('device', DEVICES)
def test_nms_keeps_the_hand_computed_boxes(device):
    from mmcv.ops import nms

    boxes = torch.tensor([[0., 0., 10., 10.],     # kept: highest score
                          [1., 1., 11., 11.],     # IoU 81/119 = 0.68 with the first: dropped
                          [20., 20., 30., 30.],   # disjoint: kept
                          [0., 0., 10., 5.]])     # IoU 50/100 = 0.5 with the first: kept at 0.6
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    dets, keep = nms(boxes.to(device), scores.to(device), iou_threshold=0.6)
    assert keep.tolist() == [0, 2, 3]
    torch.testing.assert_close(dets[:, 4].cpu(), torch.tensor([0.9, 0.7, 0.6]))


@pytest.mark.parametrize('device', DEVICES)
def test_roi_align_averages_a_constant_and_a_ramp(device):
    from mmcv.ops import RoIAlign

    ramp = torch.arange(8.).repeat(8, 1)[None, None]          # value = x coordinate
    features = torch.cat([torch.full((1, 1, 8, 8), 3.0), ramp], dim=1)
    rois = torch.tensor([[0., 2., 2., 6., 6.]])               # batch 0, box x 2..6
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(
        features.to(device), rois.to(device)).cpu()
    assert out.shape == (1, 2, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.full((2, 2), 3.0))
    # aligned=True shifts by half a pixel: bins cover x in [1.5, 3.5] and [3.5, 5.5]
    torch.testing.assert_close(out[0, 1], torch.tensor([[2.5, 4.5], [2.5, 4.5]]))
