"""Small shared checks and casts for the mixing functions (private)."""
from __future__ import annotations

import torch
from torch import Tensor


def upcast(x: Tensor) -> Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged (softmax and weights stay accurate)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_shape(name: str, x: Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` has ``shape`` (``None`` = any size)."""
    if x.dim() != len(shape) or any(
            s is not None and s != d for s, d in zip(shape, x.shape, strict=True)):
        want = '[' + ', '.join('*' if s is None else str(s) for s in shape) + ']'
        raise ValueError(f'{name} must have shape {want}, got {list(x.shape)}')
