"""The full-scale pretraining config is the paper's recipe; linear lr scaling is opt-in."""
from __future__ import annotations

import pytest


def _config(demo_root, tmp_path, *flags):
    from pretrain.train import build_config, parse_args

    return build_config(parse_args(['--method', 'dense_distill', '--data-root',
                                    str(demo_root / 'cls'), '--work-dir', str(tmp_path), *flags]))


def test_the_default_recipe_is_the_papers(demo_root, tmp_path):
    cfg = _config(demo_root, tmp_path)
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert not cfg.auto_scale_lr.enable                 # 0.1 on any number of GPUs
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.param_scheduler.milestones == [100, 200] and cfg.param_scheduler.gamma == 0.1
    assert cfg.train_dataloader.batch_size == 128       # m per device
    mix = cfg.model.mix
    assert (mix.n, tuple(mix.alpha), mix.prob, mix.block, mix.gamma) == (1000, (0.5, 2.0), 0.5, 4,
                                                                       0.5)
    assert (mix.attention_u, mix.attention_h, mix.teacher_attention) == ('gap', 'relu_l1', 'own')


@pytest.mark.parametrize('flags, lr', [((), 0.1), (('--auto-scale-lr',), 0.1 * 128 / 4096)])
def test_auto_scale_lr_scales_from_the_papers_global_batch(demo_root, tmp_path, flags, lr):
    """mmengine's own scaling, one process of m = 128: 0.1 x 128 / (32 x 128) when asked."""
    from mmengine.runner import Runner

    cfg = _config(demo_root, tmp_path, '--arch', 'resnet18', *flags)
    cfg.model.num_classes = 10
    runner = Runner.from_cfg(cfg)
    optim_wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    runner.scale_lr(optim_wrapper, cfg.auto_scale_lr)
    assert optim_wrapper.param_groups[0]['lr'] == pytest.approx(lr)
