"""Interpolation factors: Dirichlet for MultiMix, Beta for the pairwise baselines.

MultiMix (Venkataramanan et al., sec. 3.2 of the ICLR-format text) draws each column of the
interpolation matrix ``Lambda`` (``[m, n]``) from ``Dir(alpha * 1_m)``, with ``alpha`` itself
drawn per column from ``U[lo, hi]`` (sec. 4.4: "for every interpolation vector (column of
Lambda)"; the appendix says "for each example": docs/fidelity.md). Sampling uses Gamma
variates: if ``g_i ~ Gamma(alpha_k)`` independently then ``g / sum(g) ~ Dir(alpha_k * 1_m)``, so
the whole ``[m, n]`` matrix is one vectorised ``torch._standard_gamma`` call with per-column
concentration.

Reproducibility with a ``generator``: ``torch._standard_gamma`` takes no generator, so a
64-bit seed is drawn from ``generator`` and the sampling runs on the global RNG of the target
device inside ``torch.random.fork_rng`` seeded with it. The caller's global RNG state is
restored afterwards; the same generator state gives the same result on the same device. Drawing
the seed reads one number from ``generator`` (a host-device sync only if ``generator`` lives on
an accelerator; pass a CPU generator to avoid it). Without a generator nothing leaves the device.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

Alpha = float | tuple[float, float] | Sequence[float]

__all__ = ['sample_lambda', 'sample_lambda_dense', 'sample_pair_lambda']


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    return int(value)


def _check_alpha(alpha: Alpha) -> tuple[float, float]:
    """Return ``(lo, hi)``; a single number ``a`` becomes ``(a, a)``."""
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        lo = hi = float(alpha)
        if not (lo > 0 and math.isfinite(lo)):
            raise ValueError(f'alpha must be a finite number > 0, got {alpha!r}')
        return lo, hi
    if isinstance(alpha, Sequence) and len(alpha) == 2 and all(
            isinstance(a, numbers.Real) and not isinstance(a, bool) for a in alpha):
        lo, hi = float(alpha[0]), float(alpha[1])
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f'alpha range (lo, hi) needs 0 < lo <= hi < inf, got {tuple(alpha)!r}')
        return lo, hi
    raise ValueError(f'alpha must be a number > 0 or a pair (lo, hi), got {alpha!r}')


def _sampling_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """Gamma/Dirichlet sampling runs in float32, or float64 when that is asked for."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@contextlib.contextmanager
def _seeded_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Run the block on ``device``'s global RNG seeded from ``generator`` (no-op if None)."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if device.type == 'cpu':
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
        return
    backend = torch.get_device_module(device.type)
    index = device.index if device.index is not None else backend.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type), backend.device(index):
        backend.manual_seed(seed)
        yield


def sample_lambda(m: int, n: int, alpha: Alpha = (0.5, 2.0), *,
                  generator: torch.Generator | None = None,
                  device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> Tensor:
    """Sample the MultiMix interpolation matrix ``Lambda`` (paper sec. 3.2, eq. 6-7).

    Column ``k`` is drawn from ``Dir(alpha_k * 1_m)``; ``alpha_k ~ U[lo, hi]`` independently per
    column when ``alpha = (lo, hi)``, and ``alpha_k = alpha`` for a number. Every column lies on
    the simplex (nonnegative, sums to 1).

    Args:
        m: number of examples mixed (rows).
        n: number of interpolated points (columns).
        alpha: Dirichlet concentration, a number ``> 0`` or a range ``(lo, hi)``, ``0 < lo <= hi``.
        generator: optional generator for reproducible draws (see the module docstring).
        device: device of the result (default: torch's default device).
        dtype: dtype of the result (default: torch's default dtype). Sampling runs in float32
            (float64 if ``dtype`` is float64) and is cast afterwards.

    Returns:
        ``Lambda``: ``[m, n]``.
    """
    m, n = _check_size('m', m), _check_size('n', n)
    lo, hi = _check_alpha(alpha)
    device = torch.device(device) if device is not None else torch.get_default_device()
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    work = _sampling_dtype(dtype)
    with _seeded_from(generator, device):
        alphas = torch.rand(n, device=device, dtype=work).mul_(hi - lo).add_(lo)   # [n]
        gammas = torch._standard_gamma(alphas.expand(m, n).contiguous())           # [m, n]
    gammas = gammas.clamp_min_(torch.finfo(work).tiny)  # all-underflow column -> uniform, no NaN
    return gammas.div_(gammas.sum(0, keepdim=True)).to(dtype)


def sample_lambda_dense(m: int, n: int, r: int, alpha: Alpha = (0.5, 2.0), *,
                        generator: torch.Generator | None = None,
                        device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None) -> Tensor:
    """Sample one ``Lambda_j`` per spatial position for dense MultiMix (paper sec. 3.4, eq. 11-14).

    All ``r * n`` columns come from a single :func:`sample_lambda` call ``[m, r * n]``, viewed
    as ``[m, r, n]`` and transposed, so ``Lambda[j][:, k]`` is column ``j * n + k`` of that draw.

    Returns:
        ``Lambda``: ``[r, m, n]`` (a transposed view), each ``Lambda[j]`` with simplex columns.
    """
    r = _check_size('r', r)
    lam = sample_lambda(m, r * _check_size('n', n), alpha, generator=generator,
                        device=device, dtype=dtype)
    return lam.view(m, r, n).transpose(0, 1)


def sample_pair_lambda(alpha: float = 1.0, *, generator: torch.Generator | None = None) -> float:
    """Sample the pairwise mixing factor ``lambda ~ Beta(alpha, alpha)`` (mixup, cutmix).

    Drawn on the CPU as ``g1 / (g1 + g2)`` with ``g1, g2 ~ Gamma(alpha)``; returns a Python float.
    """
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise ValueError(f'alpha must be a number > 0, got {alpha!r}')
    lo, _ = _check_alpha(alpha)
    cpu = torch.device('cpu')
    with _seeded_from(generator, cpu):
        gammas = torch._standard_gamma(torch.full((2,), lo, dtype=torch.float64))
    gammas = gammas.clamp_min(torch.finfo(torch.float64).tiny)
    return float(gammas[0] / gammas.sum())
