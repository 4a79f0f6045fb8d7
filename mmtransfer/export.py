"""Pretraining checkpoint -> the backbone file MMDetection's ``ResNet`` loads.

The output is a plain ``state_dict`` with torchvision's ResNet key names (``conv1.weight``,
``bn1.running_mean``, ``layer1.0.conv1.weight``, ...), no classifier, no wrapper: MMDetection's
``ResNet`` uses the same names, and :func:`mmtransfer.detection.load_backbone_strict` checks it.
"""
from __future__ import annotations

from collections import OrderedDict

from mmtransfer.compat import torch_load_trusted
from mmtransfer.fileio import save_atomic

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
    ckpt = torch_load_trusted(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ExportError(f'{checkpoint}: not an mmengine checkpoint (no "state_dict" key)')
    try:
        backbone = backbone_state_dict(state, which)
    except ExportError as err:
        raise ExportError(f'{checkpoint}: {err}') from None
    save_atomic(backbone, out)
    return backbone
