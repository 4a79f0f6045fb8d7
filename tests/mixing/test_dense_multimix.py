import math

import pytest
import torch

from mmtransfer.mixing import (
    dense_mix,
    dense_mixing_weights,
    dense_multimix,
    multimix,
    sample_lambda,
    sample_lambda_dense,
    spatial_attention,
)

F64 = torch.float64


def naive_dense_multimix(z, y, lam, attn):
    """Eq. 11-14 one position and one interpolated point at a time."""
    m, d, r = z.shape
    n = lam.shape[2]
    z_mix = torch.zeros(n, d, r, dtype=F64)
    y_mix = torch.zeros(n, y.shape[1], r, dtype=F64)
    s = torch.zeros(n, r, dtype=F64)
    for j in range(r):
        weighted = torch.diag(attn[:, j]) @ lam[j]                    # M_j
        for k in range(n):
            s[k, j] = weighted[:, k].sum()
            col = weighted[:, k] / s[k, j] if s[k, j] > 0 else lam[j][:, k]
            for i in range(m):
                z_mix[k, :, j] += col[i] * z[i, :, j]
                y_mix[k, :, j] += col[i] * y[i]
    return z_mix, y_mix, s


def random_case(seed, m=4, n=5, d=3, c=6, r=7):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, d, r, generator=gen, dtype=F64)
    y = torch.nn.functional.one_hot(torch.randint(c, (m,), generator=gen), c).to(F64)
    lam = sample_lambda_dense(m, n, r, generator=gen, dtype=F64)
    return z, y, lam


@pytest.mark.parametrize('u, h', [('gap', 'relu_l1'), ('gap', 'softmax'), ('none', 'relu_l1')])
def test_dense_multimix_matches_naive_loop(u, h):
    z, y, lam = random_case(0)
    attn = spatial_attention(z, u=u, h=h)
    for got, want in zip(dense_multimix(z, y, lam, attn), naive_dense_multimix(z, y, lam, attn),
                         strict=True):
        torch.testing.assert_close(got, want)


def test_renormalised_weights_are_on_the_simplex():
    z, _, lam = random_case(1, m=6, n=9, r=5)
    w, s = dense_mixing_weights(lam, spatial_attention(z))
    assert w.shape == lam.shape and s.shape == (9, 5)
    assert (w >= 0).all() and (s >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(5, 9, dtype=F64))


def test_uniform_attention_and_shared_lambda_is_multimix_per_position():
    z, y, _ = random_case(2)
    m, _, r = z.shape
    lam = sample_lambda(m, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    attn = spatial_attention(z, u='none')
    z_mix, y_mix, s = dense_multimix(z, y, lam.expand(r, *lam.shape), attn)
    for j in range(r):
        z_ref, y_ref = multimix(z[:, :, j], y, lam)
        torch.testing.assert_close(z_mix[:, :, j], z_ref)
        torch.testing.assert_close(y_mix[:, :, j], y_ref)
    torch.testing.assert_close(s, torch.full_like(s, 1 / r))


def test_dense_mix_matches_loop_for_any_width():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 11, 3, generator=gen, dtype=F64)
    w = torch.rand(3, 4, 2, generator=gen, dtype=F64)
    out = dense_mix(x, w)
    for j in range(3):
        torch.testing.assert_close(out[:, :, j], (x[:, :, j].t() @ w[j]).t())


def test_zero_attention_column_gives_no_nan_and_falls_back_to_lambda():
    z, y, lam = random_case(4, m=2, r=3)
    attn = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]], dtype=F64)  # position 2 unused
    z_mix, y_mix, s = dense_multimix(z, y, lam, attn)
    assert torch.isfinite(z_mix).all() and torch.isfinite(y_mix).all()
    assert (s[:, 2] == 0).all()
    z_ref, y_ref = multimix(z[:, :, 2], y, lam[2])
    torch.testing.assert_close(z_mix[:, :, 2], z_ref)
    torch.testing.assert_close(y_mix[:, :, 2], y_ref)


@pytest.mark.parametrize('dtype', [torch.float32, F64])
def test_a_vanishing_column_sum_keeps_the_gradient_finite(dtype):
    # Position 1 is attended by example 1 only (a = 0.5), whose Lambda entry there is subnormal
    # (Dirichlet draws with small alpha give such entries): s = 5e-40 (float32) is positive,
    # 1 / s overflows and the quotient's gradient was inf * 0 = NaN (met in training at
    # alpha = 0.1). Such a column counts as zero: it falls back to Lambda (w = [0, 1] either
    # way), and the gradient is finite and exact (0: w does not depend on a there).
    tiny = 1e-39 if dtype == torch.float32 else 1e-309
    lam = torch.tensor([[[0.5], [0.5]], [[1.0 - tiny], [tiny]]], dtype=dtype)  # [r=2, m=2, n=1]
    scores = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=dtype, requires_grad=True)
    w, s = dense_mixing_weights(lam, scores.relu() / 2)     # a = [[.5, 0], [.5, .5]]
    torch.testing.assert_close(s, torch.tensor([[0.5, tiny / 2]], dtype=dtype))
    torch.testing.assert_close(w[0], torch.tensor([[0.5], [0.5]], dtype=dtype))
    torch.testing.assert_close(w[1], lam[1])
    (w * torch.tensor([[[1.0], [2.0]]], dtype=dtype)).sum().backward()
    # d/da of sum_i c_i a_i0 lam_i0 / s_0 at position 0 (c = [1, 2], lam = [.5, .5]): +-1/4
    torch.testing.assert_close(scores.grad, torch.tensor([[-0.25, 0.0], [0.25, 0.0]],
                                                         dtype=dtype))


def test_attention_of_a_vanishing_map_is_uniform_with_a_finite_gradient():
    # relu scores summing to 3e-41 (subnormal) count as zero (uniform 1/r): the gradient of
    # their l1 quotient was NaN in float32.
    z = torch.tensor([[[1e-20, 0.0, 0.0]]], requires_grad=True)   # z^T u = [1e-40 / 3, 0, 0]
    attn = spatial_attention(z, u='gap', h='relu_l1')
    torch.testing.assert_close(attn, torch.full((1, 3), 1 / 3))
    (attn * torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    assert torch.isfinite(z.grad).all()


# spatial attention, eq. 10: one example, d = 2, r = 3; columns are positions.
Z = torch.tensor([[[1.0, 0.0, 2.0],
                   [0.0, 1.0, -4.0]]], dtype=F64)


def test_attention_gap_hand_case():
    # u = mean over positions = [1, -1]; z^T u = [1, -1, 6]
    torch.testing.assert_close(spatial_attention(Z, u='gap', h='relu_l1'),
                               torch.tensor([[1 / 7, 0.0, 6 / 7]], dtype=F64))
    e = [math.e, math.exp(-1), math.exp(6)]
    torch.testing.assert_close(spatial_attention(Z, u='gap', h='softmax'),
                               torch.tensor([[v / sum(e) for v in e]], dtype=F64))


def test_attention_cam_hand_case():
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)     # [c=3, d=2]
    y = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64)                             # u = [1, 1]
    # z^T u = [1, 1, -2]
    torch.testing.assert_close(
        spatial_attention(Z, u='cam', h='relu_l1', classifier_weight=weight, y=y),
        torch.tensor([[0.5, 0.5, 0.0]], dtype=F64))


def test_attention_none_is_uniform():
    torch.testing.assert_close(spatial_attention(torch.randn(2, 4, 5), u='none'),
                               torch.full((2, 5), 0.2))


def test_relu_l1_all_negative_or_zero_map_is_uniform_without_nan():
    weight = torch.tensor([[-1.0, -1.0]], dtype=F64)                  # u = -(1, 1) for y = [1]
    positive_z = Z.abs() + 1
    attn = spatial_attention(positive_z, u='cam', classifier_weight=weight,
                             y=torch.ones(1, 1, dtype=F64))
    torch.testing.assert_close(attn, torch.full((1, 3), 1 / 3, dtype=F64))
    z = torch.zeros(2, 4, 6, requires_grad=True)
    attn = spatial_attention(z, u='gap')
    attn.sum().backward()
    assert torch.isfinite(z.grad).all()
    torch.testing.assert_close(attn, torch.full((2, 6), 1 / 6))


def test_attention_keeps_float32_for_half_inputs():
    attn = spatial_attention(torch.randn(2, 4, 6).half(), h='softmax')
    assert attn.dtype == torch.float32


@pytest.mark.parametrize('kwargs, name', [
    (dict(u='avg'), 'u'), (dict(h='l1'), 'h'), (dict(u='cam'), 'u'),
    (dict(u='cam', classifier_weight=torch.zeros(3, 5), y=torch.zeros(2, 3)),
     'classifier_weight'),
])
def test_attention_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf'^{name}\b'):
        spatial_attention(torch.zeros(2, 4, 6), **kwargs)


def test_dense_bad_shapes():
    with pytest.raises(ValueError, match=r'^attn\b'):
        dense_mixing_weights(torch.zeros(3, 2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r'^w\b'):
        dense_mix(torch.zeros(2, 4, 3), torch.zeros(3, 5, 4))
