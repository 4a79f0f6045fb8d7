"""Small shared checks and casts for the mixing functions (private)."""
from __future__ import annotations

import torch
from torch import Tensor


def upcast(x: Tensor) -> Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged (softmax and weights stay accurate)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def divide_or(x: Tensor, total: Tensor, fallback: Tensor | float) -> Tensor:
    """``x / total`` where ``total`` exceeds ``eps**2`` of its dtype (float32: 1.4e-14), else
    ``fallback``: a total that small counts as zero.

    Dividing by it would be right forward, but the quotient's gradient ``-x / total**2``
    overflows (inf, then inf * 0 = NaN) as ``total`` nears the smallest normal number: met in
    training at a position attended only by examples whose Dirichlet weights were subnormal
    (alpha = 0.1). A column sum ``s`` that small weighs that little in the loss, and attention
    scores that sum to that little are taken as no attention at all. Both branches of the
    ``where`` stay finite, so the gradient does too.
    """
    usable = total > torch.finfo(total.dtype).eps ** 2
    return torch.where(usable, x / torch.where(usable, total, 1.0), fallback)


def check_shape(name: str, x: Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` has ``shape`` (``None`` = any size)."""
    if x.dim() != len(shape) or any(
            s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
        want = '[' + ', '.join('*' if s is None else str(s) for s in shape) + ']'
        raise ValueError(f'{name} must have shape {want}, got {list(x.shape)}')
