import math

import pytest
import torch
import torch.nn.functional as F

from mmtransfer.mixing import (
    dense_cross_entropy,
    dense_label_cross_entropy,
    dense_mix,
    dense_mixing_weights,
    dense_multimix,
    mix,
    mixed_label_cross_entropy,
    multimix,
    sample_lambda,
    sample_lambda_dense,
    soft_cross_entropy,
    spatial_attention,
)

F64 = torch.float64
LN2 = math.log(2)


def test_soft_cross_entropy_hand_case():
    logits = torch.tensor([[0.0, math.log(3)], [0.0, 0.0]], dtype=F64)
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64)
    # -log(1/4) and -log(1/2), averaged
    torch.testing.assert_close(soft_cross_entropy(logits, targets),
                               torch.tensor(1.5 * LN2, dtype=F64))


def test_dense_cross_entropy_hand_cases():
    # n=1, c=2, r=2: position 0 softmax [1/4, 3/4] target [1, 0]; position 1 uniform, target
    # [1/2, 1/2]. With one point s cancels: loss = (ln 4 + ln 2) / 2.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]]], dtype=F64)        # [1, 2, 2]
    targets = torch.tensor([[[1.0, 0.5], [0.0, 0.5]]], dtype=F64)
    s = torch.tensor([[0.3, 0.9]], dtype=F64)
    torch.testing.assert_close(dense_cross_entropy(logits, targets, s),
                               torch.tensor(1.5 * LN2, dtype=F64))
    # n=2, c=2, r=1: CE = ln 4 and ln 2 weighted by s = 3 and 1 -> (3 ln 4 + ln 2) / 4.
    logits = torch.tensor([[[0.0], [math.log(3)]], [[0.0], [0.0]]], dtype=F64)  # [2, 2, 1]
    targets = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]]], dtype=F64)
    s = torch.tensor([[3.0], [1.0]], dtype=F64)
    torch.testing.assert_close(dense_cross_entropy(logits, targets, s),
                               torch.tensor(7 * LN2 / 4, dtype=F64))


def test_dense_cross_entropy_zero_weight_position_is_finite():
    logits = torch.randn(3, 4, 2, dtype=F64, requires_grad=True)
    targets = torch.softmax(torch.randn(3, 4, 2, dtype=F64), 1)
    s = torch.tensor([[0.2, 0.0], [0.5, 0.0], [0.3, 0.0]], dtype=F64)
    loss = dense_cross_entropy(logits, targets, s)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    ce0 = -(targets[:, :, 0] * logits[:, :, 0].log_softmax(1)).sum(1)
    torch.testing.assert_close(loss, (s[:, 0] * ce0).sum() / s[:, 0].sum() / 2)


def test_dense_cross_entropy_subnormal_weight_position_counts_as_zero_with_finite_gradient():
    # Position 1's weights sum to 1e-40 (subnormal in float32): dividing by it overflowed the
    # gradient (inf, then NaN). Under eps**2 it counts as zero, like an all-zero position.
    logits = torch.randn(3, 4, 2, requires_grad=True)
    targets = torch.softmax(torch.randn(3, 4, 2), 1)
    s = torch.tensor([[0.2, 1e-40], [0.5, 0.0], [0.3, 0.0]], requires_grad=True)
    loss = dense_cross_entropy(logits, targets, s)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(s.grad).all()
    ce0 = -(targets[:, :, 0] * logits[:, :, 0].log_softmax(1)).sum(1)
    torch.testing.assert_close(loss, (s[:, 0] * ce0).sum() / s[:, 0].sum() / 2)


def test_losses_upcast_half_logits():
    logits = torch.randn(4, 10).half()
    loss = mixed_label_cross_entropy(logits, torch.tensor([1, 2]), sample_lambda(2, 4))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def linear_case(seed, m=6, n=9, d=5, c=7):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, d, generator=gen, dtype=F64, requires_grad=True)
    weight = torch.randn(c, d, generator=gen, dtype=F64, requires_grad=True)
    bias = torch.randn(c, generator=gen, dtype=F64, requires_grad=True)
    labels = torch.randint(c, (m,), generator=gen)
    lam = sample_lambda(m, n, generator=gen, dtype=F64)
    return z, weight, bias, labels, lam


def test_mixed_label_cross_entropy_equals_reference_with_gradients():
    z, weight, bias, labels, lam = linear_case(0)
    c = weight.shape[0]
    # gradient w.r.t. the mixed logits themselves
    logits_mix = torch.randn(lam.shape[1], c, dtype=F64, requires_grad=True)
    y_mix = multimix(z.detach(), F.one_hot(labels, c).to(F64), lam)[1]
    ref = soft_cross_entropy(logits_mix, y_mix)
    fast = mixed_label_cross_entropy(logits_mix, labels, lam)
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(torch.autograd.grad(fast, logits_mix)[0],
                               torch.autograd.grad(ref, logits_mix)[0])
    # whole path: head(mix(z)) with soft targets vs mix(head(z)) with labels
    z_mix, y_mix = multimix(z, F.one_hot(labels, c), lam)
    ref = soft_cross_entropy(F.linear(z_mix, weight, bias), y_mix)
    fast = mixed_label_cross_entropy(mix(F.linear(z, weight, bias), lam), labels, lam)
    torch.testing.assert_close(fast, ref)
    for g_fast, g_ref in zip(torch.autograd.grad(fast, (z, weight, bias)),
                             torch.autograd.grad(ref, (z, weight, bias)), strict=True):
        torch.testing.assert_close(g_fast, g_ref)


def conv_head(x, weight, bias):
    """1x1 convolution on [m, d, r] maps: [m, c, r]."""
    return torch.einsum('cd,mdr->mcr', weight, x) + bias[:, None]


def dense_case(seed, m=5, n=8, d=4, c=6, r=7):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, d, r, generator=gen, dtype=F64, requires_grad=True)
    weight = torch.randn(c, d, generator=gen, dtype=F64, requires_grad=True)
    bias = torch.randn(c, generator=gen, dtype=F64, requires_grad=True)
    labels = torch.randint(c, (m,), generator=gen)
    lam = sample_lambda_dense(m, n, r, generator=gen, dtype=F64)
    return z, weight, bias, labels, lam


def test_dense_mix_commutes_with_linear_head_including_bias():
    z, weight, bias, _, lam = dense_case(1)
    w, _ = dense_mixing_weights(lam, spatial_attention(z.detach()))
    torch.testing.assert_close(dense_mix(conv_head(z, weight, bias), w),
                               conv_head(dense_mix(z, w), weight, bias))


@pytest.mark.parametrize('u', ['gap', 'none'])
def test_dense_label_cross_entropy_equals_reference_with_gradients(u):
    z, weight, bias, labels, lam = dense_case(2)
    c = weight.shape[0]
    attn = spatial_attention(z.detach(), u=u)
    # gradient w.r.t. the mixed logits themselves
    w, s = dense_mixing_weights(lam, attn)
    _, y_mix, s_ref = dense_multimix(z.detach(), F.one_hot(labels, c), lam, attn)
    torch.testing.assert_close(s, s_ref)
    logits_mix = torch.randn(lam.shape[2], c, z.shape[2], dtype=F64, requires_grad=True)
    ref = dense_cross_entropy(logits_mix, y_mix, s)
    fast = dense_label_cross_entropy(logits_mix, labels, w, s)
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(torch.autograd.grad(fast, logits_mix)[0],
                               torch.autograd.grad(ref, logits_mix)[0])
    # whole path, attention included: head(dense_mix(z)) vs dense_mix(head(z))
    z_mix, y_mix, s = dense_multimix(z, F.one_hot(labels, c), lam, spatial_attention(z, u=u))
    ref = dense_cross_entropy(conv_head(z_mix, weight, bias), y_mix, s)
    w, s = dense_mixing_weights(lam, spatial_attention(z, u=u))
    fast = dense_label_cross_entropy(dense_mix(conv_head(z, weight, bias), w), labels, w, s)
    torch.testing.assert_close(fast, ref)
    for g_fast, g_ref in zip(torch.autograd.grad(fast, (z, weight, bias)),
                             torch.autograd.grad(ref, (z, weight, bias)), strict=True):
        torch.testing.assert_close(g_fast, g_ref)


def test_loss_bad_arguments():
    with pytest.raises(ValueError, match=r'^labels\b'):
        mixed_label_cross_entropy(torch.zeros(4, 3), torch.tensor([0.0, 1.0]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r'^lam\b'):
        mixed_label_cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1]), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r'^targets\b'):
        soft_cross_entropy(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r'^s\b'):
        dense_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r'^w\b'):
        dense_label_cross_entropy(torch.zeros(2, 3, 4), torch.tensor([0, 1]),
                                  torch.zeros(4, 2, 3), torch.zeros(2, 4))
