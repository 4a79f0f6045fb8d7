"""Run by torchrun in test_pretrain.py: real pretrain/train.py config + Runner under DDP (gloo),
then every rank saves its model state so the test can compare ranks."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmtransfer.cli import init_cpu_distributed  # noqa: E402
from pretrain.train import build_config, parse_args  # noqa: E402


def main():
    out_dir, argv = sys.argv[1], sys.argv[2:]
    args = parse_args(argv)
    cfg = build_config(args)
    init_cpu_distributed(args.launcher)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module
    torch.save({k: v.cpu() for k, v in model.state_dict().items()},
               os.path.join(out_dir, f'rank{runner.rank}.pth'))


if __name__ == '__main__':
    main()
