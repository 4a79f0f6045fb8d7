"""The full-scale pretraining config is the paper's recipe; linear lr scaling is opt-in."""
from __future__ import annotations

import pytest


def _config(demo_root, tmp_path, *flags, method='dense_distill'):
    from pretrain.train import build_config, parse_args

    return build_config(parse_args(['--method', method, '--data-root',
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


@pytest.fixture
def fake_gpu(monkeypatch):
    """build_config as on a CUDA machine with 78 GiB free (nothing runs on it)."""
    import torch

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda *a: (78 * 2**30, 80 * 2**30))


def test_on_cpu_training_is_float32_nchw_and_amp_is_refused(demo_root, tmp_path):
    cfg = _config(demo_root, tmp_path)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.model.channels_last is False and cfg.model.data_preprocessor.channels_last is False
    with pytest.raises(ValueError, match='--amp needs a CUDA device'):
        _config(demo_root, tmp_path, '--amp')


@pytest.mark.parametrize('flags, wrapper, dtype, channels_last', [
    ((), 'AmpOptimWrapper', 'bfloat16', True),                  # the GPU defaults
    (('--amp', 'fp16'), 'AmpOptimWrapper', 'float16', True),
    (('--amp', 'off', '--no-channels-last'), 'OptimWrapper', None, False),
])
def test_gpu_defaults_are_bf16_and_channels_last_with_switches(
        demo_root, tmp_path, fake_gpu, flags, wrapper, dtype, channels_last):
    cfg = _config(demo_root, tmp_path, *flags)
    assert cfg.optim_wrapper.type == wrapper and cfg.optim_wrapper.get('dtype') == dtype
    assert cfg.model.channels_last is channels_last
    assert cfg.model.data_preprocessor.channels_last is channels_last
    assert cfg.train_dataloader.drop_last is True and cfg.randomness.diff_rank_seed is True


def test_early_block_multimix_that_cannot_fit_is_refused_before_training(demo_root, tmp_path,
                                                                          fake_gpu):
    with pytest.raises(ValueError, match=r'mix\.block=0 with mix\.n=1000'):
        _config(demo_root, tmp_path, '--amp', 'off', '--cfg-options', 'model.mix.block=0',
                method='distill')
    cfg = _config(demo_root, tmp_path, '--cfg-options', 'model.mix.block=2',   # ~10 GiB in bf16
                  method='distill')
    assert cfg.model.mix.block == 2
