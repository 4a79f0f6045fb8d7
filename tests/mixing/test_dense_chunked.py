"""The dense losses from unmixed logits equal the reference path, values and gradients, and in
blocks of positions never hold a tensor of ``[n, c, r]`` size."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmtransfer.mixing import (
    dense_cross_entropy,
    dense_label_cross_entropy,
    dense_mix,
    dense_mixed_label_cross_entropy,
    dense_mixed_soft_cross_entropy,
    dense_mixing_weights,
    sample_lambda_dense,
)

F64 = torch.float64
M, C, R, N = 5, 7, 9, 11


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(M, C, R, generator=g, dtype=F64, requires_grad=True)
    teacher = torch.randn(M, C, R, generator=g, dtype=F64)
    scores = torch.randn(M, R, generator=g, dtype=F64, requires_grad=True)
    lam = sample_lambda_dense(M, N, R, generator=g, dtype=F64)
    w, s = dense_mixing_weights(lam, scores.softmax(1))
    w_t, _ = dense_mixing_weights(lam, torch.rand(M, R, generator=g, dtype=F64))
    labels = torch.randint(0, C, (M,), generator=g)
    return logits, teacher, scores, w, s, w_t, labels


# one block; two blocks (7 + 2 positions); one position a block
BOUNDS = [10 ** 9, 7 * C * N, 1]


@pytest.mark.parametrize('max_values', BOUNDS)
def test_label_form_equals_the_reference_with_its_gradients(max_values):
    logits, _, scores, w, s, _, labels = _case()
    want = dense_label_cross_entropy(dense_mix(logits, w), labels, w, s)
    got = dense_mixed_label_cross_entropy(logits, labels, w, s, max_values=max_values)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, (logits, scores), retain_graph=True),
                    torch.autograd.grad(want, (logits, scores)), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('max_values', BOUNDS)
def test_soft_form_equals_the_reference_with_its_gradients(max_values):
    logits, teacher, scores, w, s, w_t, _ = _case(1)
    target = dense_mix(teacher, w_t).softmax(1)
    want = dense_cross_entropy(dense_mix(logits, w), target, s)
    got = dense_mixed_soft_cross_entropy(logits, w, s, teacher, w_t, max_values=max_values)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, (logits, scores), retain_graph=True),
                    torch.autograd.grad(want, (logits, scores)), strict=True):
        torch.testing.assert_close(a, b)


class _Largest(TorchDispatchMode):
    """Records the largest tensor any operation returns."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@pytest.mark.parametrize('form', ['label', 'soft'])
def test_in_blocks_no_tensor_reaches_n_c_r(form):
    """Forward and backward with 3 positions a block: the largest tensor is a block's
    ``[3, c, n]`` or the weights given, never the ``[n, c, r]`` the reference path builds."""
    logits, teacher, _, w, s, w_t, labels = _case(2)
    largest = _Largest()
    with largest:
        if form == 'label':
            loss = dense_mixed_label_cross_entropy(logits, labels, w, s, max_values=3 * C * N)
        else:
            loss = dense_mixed_soft_cross_entropy(logits, w, s, teacher, w_t,
                                                  max_values=3 * C * N)
        loss.backward()
    assert largest.numel <= max(3 * C * N, w.numel())  # a block, or the given [r, m, n] w
    assert largest.numel < N * C * R


def test_bfloat16_autocast_still_mixes_in_float32():
    logits, _, _, w, s, _, labels = _case(3)
    logits32, w32, s32 = logits.detach().float(), w.detach().float(), s.detach().float()
    want = dense_mixed_label_cross_entropy(logits32, labels, w32, s32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = dense_mixed_label_cross_entropy(logits32, labels, w32, s32, max_values=C * N)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_shapes_are_checked():
    logits, teacher, _, w, s, w_t, labels = _case()
    with pytest.raises(ValueError, match='w must have shape'):
        dense_mixed_label_cross_entropy(logits, labels, w[:-1], s)
    with pytest.raises(ValueError, match='target_w must have shape'):
        dense_mixed_soft_cross_entropy(logits, w, s, teacher, w_t[:, :-1])
