#!/usr/bin/env python
"""Train a detector: mmdet's ``tools/train.py`` plus ``--backbone`` and a strict backbone check.

The backbone file, the datasets (roots, annotation files, VOC class names) and a ``--resume``
checkpoint are validated before the Runner is built, and every image path before the first
iteration, so a wrong input stops the run with one line instead of training on it.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import mmtransfer  # noqa: E402,F401  (applies mmtransfer.compat)
from mmtransfer.cli import (  # noqa: E402
    ArgumentParser,
    add_common_args,
    check_build_keys,
    run,
    set_resume,
)
from mmtransfer.detection.runtime import (  # noqa: E402
    check_backbone,
    check_datasets,
    check_image_files,
    configure_launcher,
    load_config,
    resolve_work_dir,
    set_backbone,
)

EPILOG = """\
example:
  python tools/train.py configs/faster_rcnn_voc.py \\
      --backbone work_dirs/pretrain/dense_distill/backbone.pth \\
      --work-dir work_dirs/voc_dense_distill --cfg-options randomness.seed=0
  # after a crash, the same command with --resume continues from the last checkpoint

--backbone none trains a random-init backbone with every stage trainable and BatchNorm in
train mode (frozen_stages=-1, norm_eval=False): freezing random weights would measure a
crippled network, not the absence of pretraining.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog='tools/train.py', description='Train a detector',
                            epilog=EPILOG)
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--backbone', metavar='PATH|none',
        help='backbone weights (torchvision ResNet names, loaded strictly) instead of the '
        "config's backbone_checkpoint; 'none' = random init (see below)")
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto', metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or (no value) from the last checkpoint in the work dir')
    parser.add_argument('--tensorboard', action='store_true', help='also log TensorBoard scalars')
    add_common_args(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args: argparse.Namespace):
    """The config as mmdet's train.py builds it, plus ``--backbone`` and ``--tensorboard``."""
    cfg = load_config(args.config, args.cfg_options)
    resolve_work_dir(cfg, args.work_dir, args.config)

    if args.backbone is not None:
        set_backbone(cfg, None if args.backbone.lower() == 'none' else args.backbone)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr', None)
        if not scale or 'enable' not in scale or 'base_batch_size' not in scale:
            raise ValueError(f'--auto-scale-lr: {args.config} has no auto_scale_lr with '
                             '"enable" and "base_batch_size"')
        cfg.auto_scale_lr.enable = True

    if args.tensorboard:
        backends = list(cfg.visualizer.get('vis_backends', None) or [])
        cfg.visualizer.vis_backends = [*backends, dict(type='TensorboardVisBackend')]

    # a given file, or 'auto': the work dir's last checkpoint; or a torchrun restart's resume
    set_resume(cfg, args.resume)
    cfg.launcher = args.launcher
    return cfg


def train(argv: list[str] | None) -> None:
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    check_build_keys(cfg)
    check_backbone(cfg)
    check_datasets(cfg, ('train', 'val'))
    if args.check_only:
        return
    configure_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    # Builds the loops train() would build first anyway, and checks their images.
    for split, loop in (('train', runner.train_loop), ('val', runner.val_loop)):
        if loop is not None:
            check_image_files(loop.dataloader.dataset, split)
    runner.train()


def main(argv: list[str] | None = None) -> int:
    return run(train, argv)


if __name__ == '__main__':
    sys.exit(main())
