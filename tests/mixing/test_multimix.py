import pytest
import torch

from mmtransfer.mixing import mix, multimix, pair_mixup, sample_lambda

F64 = torch.float64


def naive_multimix(z, y, lam):
    """Eq. 6-7 one interpolated point at a time: z~_k = sum_i lam_ik z_i."""
    m, n = lam.shape
    z_mix = torch.zeros(n, z.shape[1], dtype=F64)
    y_mix = torch.zeros(n, y.shape[1], dtype=F64)
    for k in range(n):
        for i in range(m):
            z_mix[k] += lam[i, k] * z[i]
            y_mix[k] += lam[i, k] * y[i]
    return z_mix, y_mix


def test_multimix_matches_naive_loop():
    gen = torch.Generator().manual_seed(0)
    m, n, d, c = 5, 7, 6, 4
    z = torch.randn(m, d, generator=gen, dtype=F64)
    y = torch.nn.functional.one_hot(torch.randint(c, (m,), generator=gen), c).to(F64)
    lam = sample_lambda(m, n, generator=gen, dtype=F64)
    z_mix, y_mix = multimix(z, y, lam)
    z_ref, y_ref = naive_multimix(z, y, lam)
    torch.testing.assert_close(z_mix, z_ref)
    torch.testing.assert_close(y_mix, y_ref)
    torch.testing.assert_close(y_mix.sum(1), torch.ones(n, dtype=F64))


def test_multimix_accepts_integer_one_hot_targets():
    lam = torch.tensor([[0.25], [0.75]])
    y = torch.tensor([[1, 0], [0, 1]])
    _, y_mix = multimix(torch.zeros(2, 3), y, lam)
    torch.testing.assert_close(y_mix, torch.tensor([[0.25, 0.75]]))


def test_mix_keeps_trailing_shape():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 2, generator=gen, dtype=F64)
    lam = sample_lambda(4, 5, generator=gen, dtype=F64)
    out = mix(x, lam)
    assert out.shape == (5, 3, 2)
    torch.testing.assert_close(out[2], sum(lam[i, 2] * x[i] for i in range(4)))


@pytest.mark.parametrize('lam', [0.0, 0.3, 1.0])
def test_two_examples_one_point_is_manifold_mixup(lam):
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, 8, generator=gen, dtype=F64)
    y = torch.eye(3, dtype=F64)[[0, 2]]
    z_mix, y_mix = multimix(z, y, torch.tensor([[lam], [1 - lam]], dtype=F64))
    z_pair, y_pair = pair_mixup(z, y, lam, torch.tensor([1, 0]))
    torch.testing.assert_close(z_mix, z_pair[:1])
    torch.testing.assert_close(y_mix, y_pair[:1])


def test_multimix_bad_shapes():
    with pytest.raises(ValueError, match=r'^lam\b'):
        multimix(torch.zeros(3, 2), torch.zeros(3, 4), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r'^y\b'):
        multimix(torch.zeros(3, 2), torch.zeros(2, 4), torch.zeros(3, 5))
