"""Pretraining checkpoint -> the backbone files MMDetection's ``ResNet`` loads (``.pth`` and the
same tensors as ``.safetensors``, the format to share: opening it cannot run code).

The output is a plain ``state_dict`` with torchvision's ResNet key names (``conv1.weight``,
``bn1.running_mean``, ``layer1.0.conv1.weight``, ...), no classifier, no wrapper: MMDetection's
``ResNet`` uses the same names, and :func:`mmtransfer.detection.load_backbone_strict` checks it.
The CIFAR networks (``preactresnet18``, ``wrn16_8``) are exported the same way, under their own
key names: ``tools/evaluate.py`` and ``tools/analyze_embeddings.py`` read them (and tell the
network from them); MMDetection has no such backbone, detection transfer is ResNet-only.
"""
from __future__ import annotations

import os
from collections import OrderedDict

from mmtransfer.fileio import check_output_path, save_atomic, save_safetensors_atomic
from mmtransfer.loading import load_checkpoint

PREFIXES = {'student': 'student.encoder.', 'teacher': 'teacher.module.encoder.'}


class ExportError(ValueError):
    """The checkpoint holds no backbone of the requested kind."""


def backbone_state_dict(model_state: dict, which: str = 'student') -> OrderedDict:
    """Keys ``<prefix>conv1.weight`` -> ``conv1.weight`` for the student or the EMA teacher."""
    if which not in PREFIXES:
        raise ExportError(f'--which must be one of {", ".join(PREFIXES)}, got {which!r}')
    prefix = PREFIXES[which]
    out = OrderedDict((k[len(prefix):], v.detach().clone().cpu())
                      for k, v in model_state.items() if k.startswith(prefix))
    if not out:
        hint = ' (was it trained with distillation?)' if which == 'teacher' else ''
        raise ExportError(f'no {which} backbone (keys {prefix}*) in the checkpoint{hint}')
    return out


def export_backbone(checkpoint: str, out: str, which: str = 'student') -> OrderedDict:
    """Reads an mmengine pretraining checkpoint and writes the backbone to ``out`` atomically."""
    ckpt = load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ExportError(f'{checkpoint}: not an mmengine checkpoint (no "state_dict" key)')
    try:
        backbone = backbone_state_dict(state, which)
    except ExportError as err:
        raise ExportError(f'{checkpoint}: {err}') from None
    save_backbone(backbone, out)
    return backbone


def save_backbone(backbone: dict, out: str) -> list[str]:
    """Write ``out`` (``.pth``: torch, ``.safetensors``: safetensors) and, for ``.pth``, the same
    tensors as ``<out stem>.safetensors`` beside it, the format to share. Returns the paths."""
    out = str(out)
    paths = [out] if out.endswith('.safetensors') else [out, os.path.splitext(out)[0] +
                                                        '.safetensors']
    for path in paths:  # checked first: both files or neither
        check_output_path(path)
    if len(paths) == 2:
        save_atomic(backbone, out)
    save_safetensors_atomic(backbone, paths[-1])
    return paths
