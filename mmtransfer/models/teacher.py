"""The EMA teacher of MultiMix's self-distillation (paper, sec. 3.3).

Built on mmengine's :class:`~mmengine.model.ExponentialMovingAverage` (same momentum
convention, same checkpoint layout) with a fused, sync-free update:
``teacher <- (1 - momentum) * teacher + momentum * student`` for every parameter with one
``torch._foreach_lerp_`` call; buffers (BN statistics) are copied from the student.
The teacher is a deep copy of the student at construction, so no first-step special case
(and no host-device sync to detect it) is needed.
"""
from __future__ import annotations

import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn


class EMATeacher(ExponentialMovingAverage):
    """A frozen, always-eval copy of ``model`` tracking it by EMA.

    Args:
        model: the student (encoder and head).
        momentum: weight of the student in each update (mmengine convention; 0.001 means a
            decay of 0.999). The paper does not state it; 0.001 is our default.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.001):
        super().__init__(model, momentum=momentum, update_buffers=False)
        self.module.eval()

    def train(self, mode: bool = True) -> EMATeacher:
        """The teacher always uses its BN running statistics (eval mode)."""
        super().train(False)
        return self

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        teacher = list(self.module.parameters())
        student = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(teacher, student, self.momentum)
        teacher_buffers = list(self.module.buffers())
        if teacher_buffers:
            torch._foreach_copy_(teacher_buffers, [b.detach() for b in model.buffers()])
        self.steps += 1
