#!/usr/bin/env python
"""Pretrain a classifier with one of the mixing methods and export its backbone.

Reads configs/pretrain/<method>.py (the paper's ImageNet ResNet-50 recipe), or a recipe given by
--config (configs/cifar/...) with --method set on it, builds mmengine's Runner, trains, validates
top-1, and writes <work-dir>/backbone.pth (for MMDetection, from a ResNet).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing too

import mmtransfer  # noqa: E402,F401  (applies the torch / mmengine compatibility fix)
from mmtransfer.cli import (  # noqa: E402
    ArgumentParser,
    add_common_args,
    check_build_keys,
    init_cpu_distributed,
    merge_cfg_options,
    non_empty,
    non_negative_int,
    read_config,
    run,
    set_resume,
    warn_unknown_keys,
)
from mmtransfer.models.mix_config import METHODS, MixConfig  # noqa: E402

EXAMPLE = """example:
  python pretrain/train.py --method dense_distill                     # ImageNet at data/imagenet
  python pretrain/train.py --method multimix --demo                   # embedded demo data, CPU
  tools/dist_pretrain.sh dense_distill 8 --data-root /datasets/imagenet
  python pretrain/train.py --method dense_distill --seed 3 \\
      --config configs/cifar/cifar100_preactresnet18.py            # one cell of Table 1, 1 GPU
"""
DEMO_ROOT = 'data/demo'


def parse_args(argv):
    parser = ArgumentParser(prog='pretrain/train.py', description=__doc__, epilog=EXAMPLE)
    parser.add_argument('--method', choices=list(METHODS),
                        help='mixing method (default: baseline, or the --config file\'s)')
    parser.add_argument('--config', type=non_empty,
                        help='a config file instead of configs/pretrain/<method>.py')
    parser.add_argument('--demo', action='store_true',
                        help='train on the embedded demo data with CPU-sized settings '
                             '(configs/demo/pretrain.py; makes data/demo when absent, unless '
                             '--data-root names another tree)')
    parser.add_argument('--data-root', type=non_empty,
                        help='ImageFolder root holding train/ and val/')
    parser.add_argument('--arch', help='encoder: a torchvision ResNet (resnet18 .. resnet152), '
                        'preactresnet18, wrn16_8, or vit_s16 / vit_s16_avg (timm\'s ViT-S/16 '
                        'pooled by its class token / patch mean; without --config it takes '
                        'the ViT-S/16 recipe configs/pretrain/vit_s16_imagenet.py) '
                        '(default: the config\'s)')
    parser.add_argument('--max-iters', type=int, help='stop after N iterations (smoke runs)')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the work dir\'s last checkpoint')
    parser.add_argument('--amp', nargs='?', const='bf16', choices=['bf16', 'fp16', 'off'],
                        help='mixed precision, CUDA only: bf16 (the default on a GPU; `--amp` '
                             'alone), fp16 (dynamic loss scale) or off (float32)')
    parser.add_argument('--no-channels-last', action='store_true',
                        help='keep NCHW memory format on a GPU (default there: channels_last)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr linearly with the global batch from the paper\'s '
                             '0.1 at 4096 images (ours, not the paper\'s; default: lr 0.1)')
    parser.add_argument('--seed', type=non_negative_int,
                        help='random seed (default: the config\'s, 0)')
    parser.add_argument('--tensorboard', action='store_true', help='also log TensorBoard scalars')
    add_common_args(parser)
    return parser.parse_args(argv)


def apply_method(cfg, method: str) -> None:
    """Sets ``method`` on a recipe config: ``model.mix.method`` and, for the distillation
    methods, the teacher's second view and ``TeacherEMAHook`` (what configs/pretrain/distill.py
    states over the ImageNet recipe)."""
    cfg.model.mix.method = method
    distill = MixConfig.from_dict(dict(method=method)).distill
    cfg.train_dataloader.dataset.num_views = 2 if distill else 1
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'TeacherEMAHook']
    if distill:
        after = next((i + 1 for i, h in enumerate(hooks) if h.get('type') == 'RNGStateHook'), 0)
        hooks.insert(after, dict(type='TeacherEMAHook'))
    cfg.custom_hooks = hooks


def build_config(args):
    """Config file, --demo settings, --max-iters, then --cfg-options (they win over the file and
    those), then the explicit flags; validated before any work starts."""
    from mmengine.config import Config

    from mmtransfer.models.factory import VITS

    path = args.config or osp.join(REPO, 'configs', 'pretrain', f'{args.method or "baseline"}.py')
    if args.arch in VITS and not args.config:  # the ViT-S/16 recipe, with the method of the flag
        path = osp.join(REPO, 'configs', 'pretrain', 'vit_s16_imagenet.py')
        args.method = args.method or 'baseline'
    cfg = read_config(path)
    # Keys beyond the recipe's are typos or helper variables: warned about, not refused.
    recipe = Config.fromfile(osp.join(REPO, 'configs', 'pretrain', 'base.py'))
    warn_unknown_keys(cfg, recipe.keys(), path)
    if (args.config or args.arch in VITS) and args.method:  # a recipe with the flag's method
        apply_method(cfg, args.method)
    args.method = cfg.model.mix.get('method', 'baseline')
    if args.demo:
        from mmtransfer.data.demo import ensure_demo_data

        if not args.data_root:  # --demo --data-root DIR: the demo settings on another tree
            ensure_demo_data(DEMO_ROOT)
        cfg.merge_from_dict(Config.fromfile(osp.join(REPO, 'configs', 'demo', 'pretrain.py'))
                            .to_dict())
    if args.max_iters is not None:
        if args.max_iters < 1:
            raise ValueError(f'--max-iters must be >= 1, got {args.max_iters}')
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.max_iters,
                             val_interval=args.max_iters)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                            interval=args.max_iters, max_keep_ckpts=1)
        cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.interval, args.max_iters)
        cfg.log_processor.by_epoch = False
    merge_cfg_options(cfg, args.cfg_options)
    if args.data_root:  # an ImageFolder's train/ and val/, or the root of a split dataset
        for split in ('train', 'val'):
            dataset = cfg[f'{split}_dataloader'].dataset
            dataset.root = args.data_root if 'split' in dataset else osp.join(args.data_root,
                                                                              split)
        cfg.test_dataloader = cfg.val_dataloader
    for split in ('train', 'val'):
        root = cfg[f'{split}_dataloader'].dataset.root
        if not osp.isdir(root):
            raise FileNotFoundError(f'{root}: data root not found (--data-root DIR must hold '
                                    f'train/<class>/ and val/<class>/ image folders)')
    import torch

    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        if not loader.get('num_workers'):
            loader.persistent_workers = False  # torch refuses persistent workers without workers
        loader.pin_memory = bool(loader.get('pin_memory')) and torch.cuda.is_available()
    if args.arch:
        cfg.model.arch = args.arch
        if args.arch in VITS:  # ViT-S has one width (the demo's is its ResNet-18's)
            cfg.model.pop('width', None)
    mix = MixConfig.from_dict(cfg.model.get('mix'))  # fail now, with the key's name, not mid-run
    # The attention query, the image size for the network (a ViT's patch size) and the dense
    # grid: shapes by a forward pass on the meta device, before any work.
    from mmtransfer.data.cifar import SIDE
    from mmtransfer.models.pretrainer import (
        check_attention_query,
        check_dense_grid,
        embedding_grid,
    )

    check_attention_query(mix, cfg.model.arch)

    size = cfg.train_dataloader.dataset.get('size', SIDE)  # CifarDataset: 32x32 images
    grid = embedding_grid(cfg.model.arch, size, cfg.model.get('width'),
                          cfg.model.get('last_stride', 2))
    if mix.dense:
        check_dense_grid(mix, grid, cfg.model.arch in VITS)
    default_dir = osp.join('work_dirs', 'demo' if args.demo else '', 'pretrain',
                           cfg.model.arch if cfg.model.arch in VITS else '', args.method)
    if args.config:  # work_dirs/<recipe>/<method>/seed<N>: one folder per table cell and seed
        seed = cfg.randomness.seed if args.seed is None else args.seed
        default_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0],
                               args.method, f'seed{seed}')
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_dir
    cuda = torch.cuda.is_available()
    amp = args.amp or ('bf16' if cuda else 'off')  # GPU default: bf16 autocast
    if amp != 'off':
        if not cuda:
            raise ValueError('--amp needs a CUDA device (CPU autocast is tested, not offered)')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16' if amp == 'bf16' else 'float16'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if cuda and mix.mixing == 'multimix' and mix.block < 4:  # n mixtures through the network
        from mmtransfer.models.memory import check_mixing_memory

        check_mixing_memory(cfg.model.arch, cfg.train_dataloader.dataset.size, mix.block, mix.n,
                            free_bytes=torch.cuda.mem_get_info()[0],
                            bytes_per_value=2 if amp != 'off' else 4,
                            last_stride=cfg.model.get('last_stride', 2),
                            width=cfg.model.get('width'))
    for holder in (cfg.model, cfg.model.data_preprocessor):  # None in the config: by device
        if args.no_channels_last:
            holder.channels_last = False
        elif holder.get('channels_last') is None:
            holder.channels_last = cuda
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.seed is not None:
        cfg.randomness.seed = args.seed
    if args.tensorboard:
        cfg.visualizer.vis_backends = [dict(type='LocalVisBackend'),
                                       dict(type='TensorboardVisBackend')]
    check_build_keys(cfg)
    set_resume(cfg, args.resume)  # and a torchrun restart's resume; the FaultToleranceHook
    cfg.launcher = args.launcher
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = build_config(args)
    if args.check_only:
        return 0
    init_cpu_distributed(args.launcher)
    import torch

    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg.backend = 'gloo'

    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    if runner.rank == 0:
        metrics_file = osp.join(cfg.work_dir, 'val_metrics.json')
        if osp.isfile(metrics_file):
            with open(metrics_file) as f:
                metrics = json.load(f)
            top1 = metrics.get('accuracy/top1')
            print(f'{args.method}: val top-1 {top1:.2f} %  (iteration {metrics["iter"]})')
        print(f'backbone: {osp.join(cfg.work_dir, "backbone.pth")}')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    sys.exit(run(main))
