"""Run by torchrun in test_pretrain.py: real pretrain/train.py config + Runner under DDP (gloo),
then every rank saves its model state so the test can compare ranks.

Test switches (environment): ``MMT_RECORD_LAMBDA=1`` saves the first dense Lambda each rank
draws (``rank<r>_lambda.pth``); ``MMT_NAN_AT=K`` makes rank 1's loss NaN at iteration K.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmtransfer.cli import init_cpu_distributed  # noqa: E402
from pretrain.train import build_config, parse_args  # noqa: E402


def record_first_lambda(out_dir):
    from mmengine.dist import get_rank

    from mmtransfer import mixing

    draw = mixing.sample_lambda_dense

    def recording(*args, **kwargs):
        lam = draw(*args, **kwargs)
        path = os.path.join(out_dir, f'rank{get_rank()}_lambda.pth')
        if not os.path.exists(path):
            torch.save(lam.contiguous(), path)
        return lam

    mixing.sample_lambda_dense = recording


def nan_on_rank1(model, at):
    loss, calls = model.loss, [0]

    def poisoned(*args, **kwargs):
        out = loss(*args, **kwargs)
        calls[0] += 1
        if calls[0] == at:
            out['loss_cls'] = out['loss_cls'] * float('nan')
        return out

    model.loss = poisoned


def main():
    out_dir, argv = sys.argv[1], sys.argv[2:]
    args = parse_args(argv)
    cfg = build_config(args)
    init_cpu_distributed(args.launcher)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if os.environ.get('MMT_RECORD_LAMBDA'):
        record_first_lambda(out_dir)
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    if os.environ.get('MMT_NAN_AT') and runner.rank == 1:
        nan_on_rank1(runner.model.module, int(os.environ['MMT_NAN_AT']))
    runner.train()
    model = runner.model.module
    torch.save({k: v.cpu() for k, v in model.state_dict().items()},
               os.path.join(out_dir, f'rank{runner.rank}.pth'))


if __name__ == '__main__':
    main()
