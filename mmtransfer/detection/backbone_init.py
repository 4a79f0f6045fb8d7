"""Strict backbone initialisation for MMDetection detectors.

MMDetection's ``Pretrained`` initializer loads with ``strict=False``: a file whose keys do not
fit the backbone only logs a warning and the detector trains from a random backbone. Here a
key mismatch stops the run *before* training, with one line naming the file and the keys.

Accepted files (what ``mmtransfer.export`` writes, and torchvision's own weights):

- a plain state dict with torchvision ResNet names (``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight``, ..., ``layerN.x.downsample.{0,1}.*``);
- the same wrapped as ``{'state_dict': ...}``;
- torchvision's classification weights: the classifier ``fc.*`` is the one known extra and is
  dropped; ``num_batches_tracked`` counters may be absent (old torchvision files lack them).

mmdet's ``ResNet`` uses torchvision's parameter names, so the state dict loads 1:1.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from mmtransfer.loading import load_backbone

#: Classifier keys of torchvision's ImageNet weights: dropped, never an error.
CLASSIFIER_PREFIXES = ('fc.',)
#: Buffers that may be missing from a file without changing the network's function.
OPTIONAL_SUFFIXES = ('num_batches_tracked',)
#: Keys that make a file a ViT's (timm's VisionTransformer state dict, what vit_s16 exports).
VIT_KEYS = frozenset({'cls_token', 'pos_embed', 'patch_embed.proj.weight'})
#: How many offending keys an error message names before summarising the rest.
MAX_KEYS_SHOWN = 4


class BackboneLoadError(ValueError):
    """A backbone file that does not fit the backbone; the message is one line naming it."""


def _key_list(keys: list[str]) -> str:
    """``['a', 'b', ...] (+N more)``: the first few keys of a sorted list, for a one-line error."""
    shown = ', '.join(repr(k) for k in keys[:MAX_KEYS_SHOWN])
    more = len(keys) - MAX_KEYS_SHOWN
    return f'[{shown}{", ..." if more > 0 else ""}]' + (f' (+{more} more)' if more > 0 else '')


def _shape(tensor: torch.Tensor) -> str:
    return '[' + ','.join(str(s) for s in tensor.shape) + ']'


def _describe(backbone: nn.Module) -> str:
    depth = getattr(backbone, 'depth', None)
    name = type(backbone).__name__
    return f'{name}(depth={depth})' if depth is not None else name


def read_backbone_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Read a backbone file into a flat ``{name: tensor}`` dict (``fc.*`` dropped).

    Raises :class:`mmtransfer.loading.CheckpointError` for a missing/unreadable file and
    :class:`BackboneLoadError` for a file that is not a state dict of tensors.
    """
    obj = load_backbone(path)
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping):
        raise BackboneLoadError(
            f'{path}: not a state dict (found a {type(obj).__name__} at the top level; '
            "expected a dict of tensors named like 'conv1.weight')")
    not_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise BackboneLoadError(
            f'{path}: not a plain state dict: unexpected non-tensor keys '
            f"{_key_list(not_tensors)} (save the backbone's state dict itself, "
            "or wrap it as {'state_dict': ...})")
    dropped = sorted(k for k in obj if k.startswith(CLASSIFIER_PREFIXES))
    if dropped:
        print_log(f'{path}: dropping classifier keys {dropped}', logger='current')
    return {k: v for k, v in obj.items() if not k.startswith(CLASSIFIER_PREFIXES)}


def check_fits(backbone: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """Raise :class:`BackboneLoadError` unless ``state_dict`` has exactly the backbone's keys
    (optional counters aside) with the backbone's shapes."""
    expected = backbone.state_dict()
    if VIT_KEYS <= set(state_dict) and not VIT_KEYS <= set(expected):
        raise BackboneLoadError(
            f'{path}: a ViT backbone (timm keys cls_token, pos_embed, patch_embed.*) given to '
            f'{_describe(backbone)}: the Faster R-CNN configs take a ResNet backbone, and '
            'detection transfer from ViT-S/16 is not in the paper')
    missing = sorted(k for k in expected
                     if k not in state_dict and not k.endswith(OPTIONAL_SUFFIXES))
    unexpected = sorted(k for k in state_dict if k not in expected)
    mismatched = [f'{k} {_shape(state_dict[k])} in file vs {_shape(v)} in model'
                  for k, v in expected.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f'missing keys {_key_list(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_key_list(unexpected)}')
    if mismatched:
        more = len(mismatched) - MAX_KEYS_SHOWN
        problems.append('shape mismatch: ' + '; '.join(mismatched[:MAX_KEYS_SHOWN])
                        + (f' (+{more} more)' if more > 0 else ''))
    if problems:
        raise BackboneLoadError(
            f'{path}: does not fit {_describe(backbone)}: ' + '; '.join(problems))


def load_backbone_strict(backbone: nn.Module, path: str) -> None:
    """Load a torchvision-named backbone file into ``backbone`` (e.g. an mmdet ``ResNet``).

    Every parameter and buffer of ``backbone`` is overwritten, or the call raises
    :class:`BackboneLoadError` / :class:`mmtransfer.loading.CheckpointError` and leaves the
    run before training.
    """
    state_dict = read_backbone_state_dict(path)
    check_fits(backbone, state_dict, path)
    # strict=False only because optional counters may be absent; check_fits vetted the rest.
    backbone.load_state_dict(state_dict, strict=False)
    print_log(f'loaded backbone {_describe(backbone)} from {path} '
              f'({len(state_dict)} tensors, strict)', logger='current')


@WEIGHT_INITIALIZERS.register_module(name='StrictPretrained')
class StrictPretrainedInit:
    """mmengine weight initializer: ``init_cfg=dict(type='StrictPretrained', checkpoint=PATH)``.

    Unlike mmengine's ``Pretrained`` it raises on any key or shape mismatch. Errors propagate
    through ``BaseModule.init_weights`` and ``Runner.train`` (neither catches exceptions).
    """

    def __init__(self, checkpoint: str | None = None):
        if not checkpoint:
            raise BackboneLoadError(
                "init_cfg type='StrictPretrained' needs checkpoint=PATH of a backbone file")
        self.checkpoint = str(checkpoint)

    def __call__(self, module: nn.Module) -> None:
        load_backbone_strict(module, self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'StrictPretrained: load from {self.checkpoint}')
