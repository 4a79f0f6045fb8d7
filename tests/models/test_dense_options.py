"""Dense MultiMix options of the paper's ablations and the loss of the dense methods' mixup half."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from mmtransfer import mixing
from mmtransfer.models import MixConfigError, MixPretrainer, ResNetEncoder

M, N, C = 6, 12, 5


def _model(method, **mix):
    torch.manual_seed(0)
    last_stride = mix.pop('last_stride', 2)
    return MixPretrainer(arch='resnet18', num_classes=C, last_stride=last_stride,
                         mix=dict(method=method, n=N, **mix)).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(M, 3, 64, 64, generator=g), torch.randint(0, C, (M,), generator=g)


@pytest.fixture
def fixed_pair(monkeypatch):
    monkeypatch.setattr(mixing, 'sample_pair_lambda', lambda alpha, **kw: 0.3)
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    monkeypatch.setattr(torch, 'randperm', lambda m, **kw: perm.clone())
    return 0.3, perm


# ---------------------------------------------------------------- the mixup half of dense
def _mixup_reference(model, x, y, lam, perm, dense):
    net = model.student
    z = net.encoder(lam * x + (1 - lam) * x[perm])
    y_mix = lam * F.one_hot(y, C).float() + (1 - lam) * F.one_hot(y[perm], C).float()
    if not dense:
        return -(y_mix * net.head(z.mean((2, 3))).log_softmax(1)).sum(1).mean()
    logits = net.head(z.flatten(2))                                       # [m, c, r]
    return -(y_mix[:, :, None] * logits.log_softmax(1)).sum(1).mean()     # uniform s


@pytest.mark.parametrize('method, mix, dense', [
    ('dense', {}, False),                          # the paper: ordinary pooled mixup loss
    ('dense_distill', {}, False),
    ('dense', dict(pairwise_dense_loss=True), True),   # Table 9's "+ dense loss" switch
    ('mixup', dict(dense=True), True),             # Table 9: "Mixup + dense loss"
])
def test_input_mixup_batches_use_the_pooled_loss_unless_switched(fixed_pair, method, mix, dense):
    lam, perm = fixed_pair
    model = _model(method, prob=0.0, gamma=1.0, **mix)
    x, y = _batch()
    loss = model.loss(x, y, x)['loss_cls']
    torch.testing.assert_close(loss, _mixup_reference(model, x, y, lam, perm, dense),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the dense grid
def test_dense_pool_is_non_overlapping_kernel_k_average_pooling():
    z = torch.randn(2, 3, 7, 7)
    model = _model('dense', dense_pool=2)
    out = model._dense_grid(z)
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out[..., 0, 0], z[..., 0:2, 0:2].mean((-2, -1)))
    torch.testing.assert_close(out[..., 1, 2], z[..., 2:4, 4:6].mean((-2, -1)))
    torch.testing.assert_close(out[..., 3, 3], z[..., 6, 6])            # clipped last window
    out4 = _model('dense', dense_pool=4)._dense_grid(z)
    assert out4.shape == (2, 3, 2, 2)
    torch.testing.assert_close(out4[..., 1, 1], z[..., 4:7, 4:7].mean((-2, -1)))
    # adaptive pooling (dense_resolution) overlaps: 7 -> 4 reads column 3 twice
    adaptive = _model('dense', dense_resolution=4)._dense_grid(z)
    torch.testing.assert_close(adaptive[..., 0, 1], z[..., 0:2, 1:4].mean((-2, -1)))


def test_dense_pool_larger_than_the_feature_map_is_an_error():
    x, y = _batch()                                          # 64 px -> 2x2 embedding
    with pytest.raises(ValueError, match='dense_pool=3'):
        _model('dense', prob=1.0, dense_pool=3).loss(x, y)


def test_last_stride_one_doubles_the_grid_and_keeps_the_weights():
    enc = ResNetEncoder('resnet18', last_stride=1).eval()
    ref = torchvision.models.resnet18().state_dict()
    assert {k: v.shape for k, v in enc.state_dict().items()} == \
        {k: v.shape for k, v in ref.items() if not k.startswith('fc.')}
    assert enc(torch.randn(1, 3, 64, 64)).shape == (1, 512, 4, 4)       # 2x2 at stride 2
    assert all(c.stride == (1, 1) and c.dilation == (1, 1)
               for c in enc.layer4.modules() if isinstance(c, torch.nn.Conv2d))
    enc50 = ResNetEncoder('resnet50', last_stride=1)
    assert enc50(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 4, 4)
    with pytest.raises(ValueError, match='last_stride'):
        ResNetEncoder('resnet18', last_stride=3)


def test_dense_loss_on_the_stride_one_grid_equals_the_reference(monkeypatch):
    model = _model('dense', prob=1.0, last_stride=1)
    x, y = _batch()
    lam = mixing.sample_lambda_dense(M, N, 16, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(mixing, 'sample_lambda_dense', lambda m, n, r, alpha, **kw: lam)
    loss = model.loss(x, y)['loss_cls']
    z = model.student.encoder(x).flatten(2)                               # [m, 512, 16]
    z_mix, y_mix, s = mixing.dense_multimix(z, F.one_hot(y, C).float(), lam,
                                            mixing.spatial_attention(z))
    expected = mixing.dense_cross_entropy(model.student.head(z_mix), y_mix, s)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('block', [1, 2, 3])
def test_dense_multimix_at_an_earlier_block_equals_the_reference(monkeypatch, block):
    """Fig. 3a: mix the block-k maps per position (eq. 10-13 on them), run the rest of the
    network on the n mixtures, loss eq. 14 on the embedding grid with the targets and s averaged
    over each grid cell."""
    model = _model('dense', prob=1.0, block=block)
    x, y = _batch()
    side = 64 // 2 ** (block + 1)                                          # 16, 8, 4
    lam = mixing.sample_lambda_dense(M, N, side * side, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(mixing, 'sample_lambda_dense', lambda m, n, r, alpha, **kw: lam)
    loss = model.loss(x, y)['loss_cls']
    net = model.student
    h = net.encoder(x, 0, block)
    z = h.flatten(2)
    h_mix, y_mix, s = mixing.dense_multimix(z, F.one_hot(y, C).float(), lam,
                                            mixing.spatial_attention(z))
    out = net.encoder(h_mix.reshape(N, -1, side, side), block)             # [n, 512, 2, 2]
    k = side // 2
    y_out = F.avg_pool2d(y_mix.reshape(N, C, side, side), k).flatten(2)    # [n, c, 4]
    s_out = F.avg_pool2d(s.reshape(N, 1, side, side), k).flatten(1)        # [n, 4]
    assert torch.allclose(y_out.sum(1), torch.ones(N, 4))                 # still distributions
    expected = mixing.dense_cross_entropy(net.head(out.flatten(2)), y_out, s_out)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_pool_positions_averages_cells_and_keeps_columns_on_the_simplex():
    w = torch.rand(16, 3, 5)
    w = w / w.sum(1, keepdim=True)
    pooled = mixing.pool_positions(w, (4, 4), (2, 2), dim=0)
    assert pooled.shape == (4, 3, 5)
    torch.testing.assert_close(pooled[1], w[[2, 3, 6, 7]].mean(0))       # cell (0, 1)
    torch.testing.assert_close(pooled.sum(1), torch.ones(4, 5))
    with pytest.raises(ValueError, match='positions'):
        mixing.pool_positions(w, (3, 3), (1, 1), dim=0)


@pytest.mark.parametrize('mix, key', [
    (dict(method='dense', block=0), 'mix.block'),
    (dict(method='dense', block=3, attention_u='cam'), 'cam'),
    (dict(method='dense', dense_pool=0), 'mix.dense_pool'),
    (dict(method='dense', dense_pool=2, dense_resolution=4), 'choose one'),
    (dict(method='dense_distill', teacher_attention='both'), 'mix.teacher_attention'),
])
def test_bad_dense_options_name_the_key(mix, key):
    with pytest.raises(MixConfigError, match=key):
        MixPretrainer(arch='resnet18', num_classes=C, mix=mix)


def test_detach_attention_keeps_the_loss_and_removes_the_attention_gradient(monkeypatch):
    """Same forward; the gradient w.r.t. the embedding loses exactly the attention path. The
    default lets it flow (docs/findings.md, "The gradient through the attention collapses it")."""
    x, y = _batch()
    lam = mixing.sample_lambda_dense(M, N, 4, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(mixing, 'sample_lambda_dense', lambda m, n, r, alpha, **kw: lam)
    z = _model('dense').student.encoder(x).detach().requires_grad_()     # [m, 512, 2, 2]
    grads, losses = {}, {}
    for detach in (False, True):
        model = _model('dense', prob=1.0, detach_attention=detach)
        monkeypatch.setattr(model.student.encoder, 'forward', lambda *args: z)
        losses[detach] = model.loss(x, y)['loss_cls']
        grads[detach], = torch.autograd.grad(losses[detach], z)
    torch.testing.assert_close(losses[True], losses[False])
    # reference for the detached case: the attention of a constant copy of z
    w, s = mixing.dense_mixing_weights(lam, mixing.spatial_attention(z.detach().flatten(2)))
    ref = mixing.dense_label_cross_entropy(
        mixing.dense_mix(model.student.head(z.flatten(2)), w), y, w, s)
    torch.testing.assert_close(grads[True], torch.autograd.grad(ref, z)[0], rtol=1e-5, atol=1e-7)
    assert (grads[True] - grads[False]).norm() > 1e-3 * grads[False].norm()
    default = _model('dense', prob=1.0)
    monkeypatch.setattr(default.student.encoder, 'forward', lambda *args: z)
    grad_default, = torch.autograd.grad(default.loss(x, y)['loss_cls'], z)
    torch.testing.assert_close(grad_default, grads[False])
