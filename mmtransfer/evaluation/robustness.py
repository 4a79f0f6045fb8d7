"""Adversarial examples in pixel space: FGSM (Goodfellow et al., 2015) and PGD (Madry et al.,
2018), l-infinity ball of radius ``eps`` around the clean image, pixels kept in ``[0, 1]``.

``model`` maps *pixel* images ``[m, 3, H, W]`` in ``[0, 1]`` to logits ``[m, c]``: normalisation
belongs inside it (see :func:`normalized`), so the attack's budget is in pixel units, before
normalisation, as in the robustness tables of the mixup literature.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Model = Callable[[Tensor], Tensor]

#: The mixup literature's attack protocol, as the robustness test PuzzleMix (Kim et al., 2020)
#: publishes runs it (github.com/snu-mllab/PuzzleMix, ``checkpoint/test_robust.py``: ``param_set =
#: [(8, 8, 1, False), (4, 2, 20, True)]``, budgets and steps in 1/255 of the [0, 1] pixel range):
#: FGSM, one step of 8/255; PGD, 20 steps of 2/255 in the 4/255 ball from a uniform random start.
#: ``tools/evaluate.py``'s defaults.
LITERATURE_PROTOCOL = dict(fgsm_eps=8 / 255, pgd_eps=4 / 255, pgd_step=2 / 255, pgd_iters=20)


def normalized(model: Model, mean: Tensor, std: Tensor) -> Model:
    """``x -> model((x - mean) / std)`` for pixel images ``x`` in ``[0, 1]``; ``mean``, ``std``:
    ``[3]`` in the same units."""
    mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return lambda x: model((x - mean.to(x)) / std.to(x))


def _input_gradient(model: Model, x: Tensor, labels: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), labels)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: Model, x: Tensor, labels: Tensor, eps: float) -> Tensor:
    """One signed-gradient step: ``clamp(x + eps * sign(grad_x CE), 0, 1)``.

    Args:
        model: pixels -> logits.
        x: ``[m, 3, H, W]`` clean images in ``[0, 1]``.
        labels: ``[m]`` true classes.
        eps: l-infinity budget in pixel units (e.g. ``4 / 255``).

    Returns:
        ``[m, 3, H, W]`` adversarial images, ``|x_adv - x|_inf <= eps``.
    """
    if eps < 0:
        raise ValueError(f'eps must be >= 0, got {eps}')
    if eps == 0:
        return x.clone()
    return (x + eps * _input_gradient(model, x, labels).sign()).clamp(0, 1).detach()


def pgd(model: Model, x: Tensor, labels: Tensor, eps: float, step: float, iters: int, *,
        random_start: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Projected gradient descent: ``iters`` signed steps of size ``step``, each projected back
    onto the ``eps`` ball around ``x`` and onto ``[0, 1]``; from a uniform random point of the
    ball when ``random_start``.

    Returns:
        ``[m, 3, H, W]`` adversarial images, ``|x_adv - x|_inf <= eps``.
    """
    if eps < 0 or step < 0 or iters < 0:
        raise ValueError(f'eps, step and iters must be >= 0, got {eps}, {step}, {iters}')
    x = x.detach()
    adv = x.clone()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, device='cpu').to(x) * 2 - 1
        adv = (x + eps * noise).clamp(0, 1)
    for _ in range(iters):
        adv = adv + step * _input_gradient(model, adv, labels).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()
