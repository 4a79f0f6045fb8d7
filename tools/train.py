"""Train a detector: mmdet's ``tools/train.py`` plus ``--backbone`` and a strict backbone check.

The backbone file is validated (strict key/shape check) before the Runner is built, so a wrong
file stops the run in a second instead of training a random backbone.
"""
from __future__ import annotations

import argparse
import os
import sys

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmtransfer  # noqa: F401  (applies mmtransfer.compat)
from mmtransfer.detection.runtime import (
    UsageError,
    check_backbone,
    check_datasets,
    load_config,
    resolve_work_dir,
    run_cli,
    set_backbone,
)

EPILOG = """\
example:
  python tools/train.py configs/faster_rcnn_voc.py \\
      --backbone work_dirs/pretrain/dense_distill/backbone.pth \\
      --work-dir work_dirs/voc_dense_distill

--backbone none trains a random-init backbone with every stage trainable and BatchNorm in
train mode (frozen_stages=-1, norm_eval=False): freezing random weights would measure a
crippled network, not the absence of pretraining.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a detector', epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
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
        '--resume', nargs='?', type=str, const='auto',
        help='If specify checkpoint path, resume from it, while if not specify, try to auto '
        'resume from the latest checkpoint in the work directory.')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy '
        'format will be merged into config file. If the value to be overwritten is a list, '
        'it should be like key="[a,b]" or key=a,b It also allows nested list/tuple values, '
        'e.g. key="[(a,b),(c,d)]" Note that the quotation marks are necessary and that no '
        'white space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show tracebacks for errors')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args: argparse.Namespace):
    """The config as mmdet's train.py builds it, plus ``--backbone``."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    resolve_work_dir(cfg, args.work_dir, args.config)

    if args.backbone is not None:
        set_backbone(cfg, None if args.backbone.lower() == 'none' else args.backbone)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr', None)
        if not scale or 'enable' not in scale or 'base_batch_size' not in scale:
            raise UsageError(f'--auto-scale-lr: {args.config} has no auto_scale_lr with '
                             '"enable" and "base_batch_size"')
        cfg.auto_scale_lr.enable = True

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not os.path.isfile(args.resume):
            raise UsageError(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def train(args: argparse.Namespace) -> None:
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    check_backbone(cfg)
    check_datasets(cfg, ('train', 'val'))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


def main(argv: list[str] | None = None) -> int:
    return run_cli(train, parse_args(argv))

if __name__ == '__main__':
    sys.exit(main())
