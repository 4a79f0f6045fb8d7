import math

import pytest
import torch

from mmtransfer.mixing import sample_lambda, sample_lambda_dense, sample_pair_lambda


def assert_simplex_columns(lam, dim=-2):
    assert torch.isfinite(lam).all()
    assert (lam >= 0).all()
    torch.testing.assert_close(lam.sum(dim), torch.ones_like(lam.sum(dim)))


@pytest.mark.parametrize('m, n, alpha', [(1, 3, 1.0), (2, 5, (0.5, 2.0)), (7, 64, 0.05),
                                         (128, 1000, (0.5, 2.0))])
def test_sample_lambda_columns_on_simplex(m, n, alpha):
    lam = sample_lambda(m, n, alpha, generator=torch.Generator().manual_seed(0))
    assert lam.shape == (m, n) and lam.dtype == torch.get_default_dtype()
    assert_simplex_columns(lam)


def test_sample_lambda_dense_columns_on_simplex_and_is_one_flat_draw():
    m, n, r = 5, 6, 4
    lam = sample_lambda_dense(m, n, r, generator=torch.Generator().manual_seed(3))
    assert lam.shape == (r, m, n)
    assert_simplex_columns(lam, dim=1)
    flat = sample_lambda(m, r * n, generator=torch.Generator().manual_seed(3))
    for j in range(r):
        for k in range(n):
            torch.testing.assert_close(lam[j, :, k], flat[:, j * n + k], rtol=0, atol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float64])
def test_sample_lambda_dtype(dtype):
    lam = sample_lambda(4, 10, dtype=dtype)
    assert lam.dtype == dtype
    torch.testing.assert_close(lam.sum(0).double(), torch.ones(10, dtype=torch.float64),
                               atol=1e-2, rtol=0)


@pytest.mark.parametrize('alpha', [0.5, 1.0, 3.0])
def test_dirichlet_moments_fixed_alpha(alpha):
    m, n = 5, 200_000
    lam = sample_lambda(m, n, alpha, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
    mean, var = 1 / m, (1 / m) * (1 - 1 / m) / (m * alpha + 1)
    row_mean = lam.mean(1)
    se_mean = math.sqrt(var / n)
    assert (row_mean - mean).abs().max() < 5 * se_mean
    centred_sq = (lam - row_mean[:, None]) ** 2
    row_var = centred_sq.mean(1)
    se_var = (centred_sq.var(1) / n).sqrt()
    assert ((row_var - var).abs() < 5 * se_var).all(), (row_var, var)


def test_alpha_range_mixes_concentrations():
    """With alpha ~ U[lo, hi] per column the entry variance is the mixture
    (1/m)(1-1/m) E[1/(m alpha + 1)], not the one of the mean alpha."""
    m, n, lo, hi = 4, 200_000, 0.5, 2.0
    lam = sample_lambda(m, n, (lo, hi), generator=torch.Generator().manual_seed(2),
                        dtype=torch.float64)
    mixture = (1 / m) * (1 - 1 / m) * math.log((m * hi + 1) / (m * lo + 1)) / (m * (hi - lo))
    at_mean_alpha = (1 / m) * (1 - 1 / m) / (m * (lo + hi) / 2 + 1)
    centred_sq = (lam - 1 / m) ** 2
    var, se = centred_sq.mean().item(), (centred_sq.var() / centred_sq.numel()).sqrt().item()
    assert abs(var - mixture) < 5 * se
    assert abs(var - at_mean_alpha) > 20 * se


def _per_column_alpha(lam):
    """Moment estimate of each column's concentration from sum_i lam_i^2 (large m)."""
    m = lam.shape[0]
    q = (lam ** 2).sum(0)
    return ((1 - 1 / m) / (q - 1 / m) - 1) / m


def test_per_column_alphas_are_uniform_in_range_or_fixed():
    m, n = 2000, 2000
    gen = torch.Generator().manual_seed(4)
    ranged = _per_column_alpha(sample_lambda(m, n, (0.5, 2.0), generator=gen, dtype=torch.float64))
    assert abs(ranged.mean().item() - 1.25) < 0.05
    assert abs(ranged.std().item() - 1.5 / math.sqrt(12)) < 0.05      # std of U[0.5, 2]
    assert ranged.min() < 0.6 and ranged.max() > 1.9
    for alpha in (0.5, 2.0):
        fixed = _per_column_alpha(sample_lambda(m, n, alpha, generator=gen, dtype=torch.float64))
        assert abs(fixed.mean().item() - alpha) < 0.05 * alpha
        assert fixed.std().item() < 0.15 * alpha


def test_generator_reproducible_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = sample_lambda(6, 9, generator=torch.Generator().manual_seed(7))
    b = sample_lambda(6, 9, generator=torch.Generator().manual_seed(7))
    c = sample_lambda(6, 9, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    gen = torch.Generator().manual_seed(7)
    first, second = sample_lambda(6, 9, generator=gen), sample_lambda(6, 9, generator=gen)
    assert torch.equal(first, a) and not torch.allclose(first, second)
    d1 = sample_lambda_dense(3, 4, 5, generator=torch.Generator().manual_seed(9))
    d2 = sample_lambda_dense(3, 4, 5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(d1, d2)
    assert sample_pair_lambda(0.4, generator=torch.Generator().manual_seed(5)) == \
        sample_pair_lambda(0.4, generator=torch.Generator().manual_seed(5))


def test_sample_pair_lambda_beta_moments():
    gen = torch.Generator().manual_seed(0)
    alpha, count = 0.4, 4000
    draws = torch.tensor([sample_pair_lambda(alpha, generator=gen) for _ in range(count)],
                         dtype=torch.float64)
    assert ((draws >= 0) & (draws <= 1)).all()
    var = 1 / (4 * (2 * alpha + 1))                                     # Beta(a, a) variance
    assert abs(draws.mean().item() - 0.5) < 5 * math.sqrt(var / count)
    assert abs(draws.var().item() - var) < 0.1 * var


@pytest.mark.parametrize('kwargs, name', [
    (dict(m=0, n=3), 'm'), (dict(m=3, n=0), 'n'), (dict(m=3, n=2.5), 'n'),
    (dict(m=3, n=2, alpha=0.0), 'alpha'), (dict(m=3, n=2, alpha=-1.0), 'alpha'),
    (dict(m=3, n=2, alpha=(2.0, 0.5)), 'alpha'), (dict(m=3, n=2, alpha=(0.0, 1.0)), 'alpha'),
    (dict(m=3, n=2, alpha=(1.0, 2.0, 3.0)), 'alpha'), (dict(m=3, n=2, alpha='1'), 'alpha'),
])
def test_sample_lambda_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf'^{name}\b'):
        sample_lambda(**kwargs)


def test_sample_lambda_dense_and_pair_bad_arguments():
    with pytest.raises(ValueError, match=r'^r\b'):
        sample_lambda_dense(3, 2, 0)
    with pytest.raises(ValueError, match=r'^n\b'):
        sample_lambda_dense(3, 0, 2)
    with pytest.raises(ValueError, match=r'^alpha\b'):
        sample_pair_lambda(0.0)
    with pytest.raises(ValueError, match=r'^alpha\b'):
        sample_pair_lambda((0.5, 1.0))
