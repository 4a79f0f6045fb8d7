"""Config handling shared by ``tools/train.py`` and ``tools/test.py``.

Everything here runs before mmengine's ``Runner`` is built, so bad input (a missing config,
backbone file or dataset) stops the run with one line instead of a traceback mid-way.
"""
from __future__ import annotations

import os.path as osp
import sys
from collections.abc import Callable, Iterator

from mmengine.config import Config, ConfigDict

from mmtransfer.compat import CheckpointError
from mmtransfer.detection.backbone_init import BackboneLoadError, load_backbone_strict

STRICT_INIT = 'StrictPretrained'


class UsageError(Exception):
    """Bad command-line input; the message is one line."""


#: Errors that ``tools/`` report as ``error: <message>`` (exit 2) instead of a traceback.
USER_ERRORS = (UsageError, BackboneLoadError, CheckpointError, FileNotFoundError)


def run_cli(command: Callable, args) -> int:
    """Run ``command(args)``; a user error becomes ``error: <one line>`` on stderr and exit
    code 2 (the traceback is kept with ``args.debug``). Returns the exit code."""
    try:
        command(args)
    except USER_ERRORS as err:
        if getattr(args, 'debug', False):
            raise
        lines = str(err).strip().splitlines()
        print(f'error: {lines[0] if lines else type(err).__name__}', file=sys.stderr)
        return 2
    return 0


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """``Config.fromfile`` plus ``--cfg-options``, with a one-line error for a missing file."""
    if not osp.isfile(path):
        raise UsageError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def resolve_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """mmdet's rule: ``--work-dir`` > ``work_dir`` in the config > ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


# ---------------------------------------------------------------------------- backbone


def _init_cfgs(backbone_cfg: ConfigDict) -> list:
    init_cfg = backbone_cfg.get('init_cfg', None)
    if init_cfg is None:
        return []
    return list(init_cfg) if isinstance(init_cfg, list) else [init_cfg]


def strict_backbone_checkpoint(cfg: Config) -> str | None:
    """The file of the backbone's ``StrictPretrained`` initializer, or None (random init or
    another initializer)."""
    for init_cfg in _init_cfgs(cfg.model.backbone):
        if init_cfg.get('type') == STRICT_INIT:
            return init_cfg.get('checkpoint')
    return None


def set_backbone(cfg: Config, checkpoint: str | None) -> None:
    """Point the backbone at ``checkpoint`` (strict load), or make it a random-init backbone.

    Random init (``checkpoint=None``) trains *every* backbone layer with BatchNorm in train
    mode (``frozen_stages=-1, norm_eval=False``): mmdet's ``frozen_stages=1, norm_eval=True``
    assume pretrained weights and would keep a random stem and identity BN statistics fixed,
    which measures a crippled network rather than the absence of pretraining (He et al.,
    "Rethinking ImageNet Pre-training", 2019, train from-scratch detectors with all layers and
    normalisation trainable).
    """
    backbone = cfg.model.backbone
    if checkpoint is None:
        backbone.init_cfg = None
        backbone.frozen_stages = -1
        backbone.norm_eval = False
    else:
        backbone.init_cfg = ConfigDict(type=STRICT_INIT, checkpoint=checkpoint)
    cfg.backbone_checkpoint = checkpoint


def check_backbone(cfg: Config) -> None:
    """Fail fast: build the backbone alone (cheap) and load its file strictly, before the
    Runner builds datasets and the detector."""
    checkpoint = strict_backbone_checkpoint(cfg)
    if checkpoint is None:
        return
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    load_backbone_strict(MODELS.build(backbone_cfg), checkpoint)


# ---------------------------------------------------------------------------- datasets


def _dataset_cfgs(dataset_cfg: dict) -> Iterator[dict]:
    """Leaf dataset configs inside wrappers (RepeatDataset.dataset, ConcatDataset.datasets)."""
    if 'dataset' in dataset_cfg:
        yield from _dataset_cfgs(dataset_cfg['dataset'])
    elif 'datasets' in dataset_cfg:
        for child in dataset_cfg['datasets']:
            yield from _dataset_cfgs(child)
    else:
        yield dataset_cfg


def check_datasets(cfg: Config, splits: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` naming the first dataset root or annotation file that does not
    exist, for the ``<split>_dataloader`` entries of ``cfg`` (e.g. ``('train', 'val')``)."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader', None)
        if not loader:
            continue
        for dataset in _dataset_cfgs(loader['dataset']):
            root = dataset.get('data_root', '') or ''
            if root and not osp.isdir(root):
                raise UsageError(
                    f'dataset root not found: {root} ({split}_dataloader, '
                    f'{dataset.get("type")}); put the data there or override it with '
                    '--cfg-options')
            ann_file = dataset.get('ann_file', '')
            if ann_file:
                ann_path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
                if not osp.isfile(ann_path):
                    raise UsageError(
                        f'annotation file not found: {ann_path} ({split}_dataloader)')
        evaluators = cfg.get(f'{split}_evaluator', None) or []
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann_file = evaluator.get('ann_file', None)
            if ann_file and not osp.isfile(ann_file):
                raise UsageError(f'annotation file not found: {ann_file} ({split}_evaluator)')
