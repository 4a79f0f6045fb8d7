"""MultiMix: interpolate ``n`` points from ``m`` embeddings at once (paper sec. 3.2, eq. 6-7).

Section and equation numbers: the paper's ICLR-format arXiv text (2206.14868); docs/fidelity.md.
"""
from __future__ import annotations

from torch import Tensor

from ._utils import check_shape

__all__ = ['mix', 'multimix']


def mix(x: Tensor, lam: Tensor) -> Tensor:
    """Column-wise convex combinations ``X~ = Lambda^T X`` of the rows of ``x``.

    Args:
        x: ``[m, ...]`` embeddings, logits or targets (any trailing shape).
        lam: ``[m, n]`` interpolation matrix, columns on the simplex.

    Returns:
        ``[n, ...]``: row ``k`` is ``sum_i lam[i, k] * x[i]``.
    """
    if not x.is_floating_point():
        raise ValueError(f'x must be floating point, got {x.dtype}')
    check_shape('lam', lam, (x.shape[0], None))
    return (lam.to(x.dtype).t() @ x.reshape(x.shape[0], -1)).view(lam.shape[1], *x.shape[1:])


def multimix(z: Tensor, y: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
    """MultiMix of embeddings and targets, eq. 6-7: ``Z~ = Z Lambda``, ``Y~ = Y Lambda``.

    The paper stores examples as columns (``Z`` is ``d x m``); here they are rows (batch first),
    so ``z_mix = Lambda^T z``.

    Args:
        z: ``[m, d]`` embeddings.
        y: ``[m, c]`` targets, one-hot or soft (integer one-hot is converted to float32).
        lam: ``[m, n]`` interpolation matrix from :func:`sample_lambda`.

    Returns:
        ``(z_mix [n, d], y_mix [n, c])``.
    """
    check_shape('z', z, (None, None))
    check_shape('y', y, (z.shape[0], None))
    y = y if y.is_floating_point() else y.float()
    return mix(z, lam), mix(y, lam)
