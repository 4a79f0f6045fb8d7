"""Will MultiMix at an early block fit? An estimate before training, not an OOM deep inside it.

MultiMix at block k < 4 runs the rest of the network on the n mixtures, so its activations grow
with n: for ResNet-50 at 224 px and n = 1000, blocks 0 and 1 need about 80 and 45 GiB (measured
on CPU, issue 10). The estimate adds up the outputs of every layer after block k for one image,
computed on the ``meta`` device (shapes only, no memory, milliseconds), times
:data:`SAVED_FRACTION`, the share of those outputs autograd keeps (82 MiB of 122 MiB for a whole
ResNet-50 image at 224 px: in-place ReLUs and pooling save less).
"""
from __future__ import annotations

import torch

from mmtransfer.models.encoder import NUM_BLOCKS
from mmtransfer.models.factory import build_encoder

SAVED_FRACTION = 82 / 122


def mixed_activation_bytes(arch: str, image_size: int, block: int, n: int,
                           bytes_per_value: int = 4, last_stride: int = 2,
                           width: int | None = None) -> int:
    """Activation memory of the network after ``block`` run on ``n`` mixtures (bytes)."""
    if block >= NUM_BLOCKS:
        return 0
    with torch.device('meta'):
        encoder = build_encoder(arch, width=width, last_stride=last_stride)
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel()

    leaves = [m for m in encoder.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            h = encoder(torch.empty(1, 3, image_size, image_size, device='meta'), 0, block)
            total = 0
            encoder(h, block)
    finally:
        for handle in handles:
            handle.remove()
    return int(total * SAVED_FRACTION * bytes_per_value * n)


def check_mixing_memory(arch: str, image_size: int, block: int, n: int, free_bytes: int,
                        bytes_per_value: int = 4, last_stride: int = 2,
                        width: int | None = None) -> None:
    """Raise one line naming ``mix.block`` and ``mix.n`` if the mixtures' activations alone
    would exceed ``free_bytes`` (the device's free memory)."""
    need = mixed_activation_bytes(arch, image_size, block, n, bytes_per_value, last_stride, width)
    if need > free_bytes:
        raise ValueError(
            f'mix.block={block} with mix.n={n}: the network after block {block} on {n} mixtures '
            f'needs about {need / 2**30:.0f} GiB of activations ({arch}, {image_size} px), the '
            f'device has {free_bytes / 2**30:.0f} GiB free; lower mix.n or raise mix.block')


def training_state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes held between steps: parameters, buffers (an EMA teacher's included) and the
    optimizer's state tensors."""
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    return sum(t.numel() * t.element_size() for t in tensors)
