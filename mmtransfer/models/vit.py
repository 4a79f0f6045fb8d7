"""ViT-S/16 (timm's ``vit_small_patch16_224``) as an encoder entered and left at any block.

The network is timm's own :class:`~timm.models.vision_transformer.VisionTransformer` with the
arguments of ``vit_small_patch16_224`` (patch 16, width 384, depth 12, 6 heads) and no head, so
its state dict is timm's: ``timm.create_model('vit_small_patch16_224', num_classes=0)`` loads an
exported backbone with ``strict=True``. ``dynamic_img_size`` lets it take any multiple of 16 px
(the 14 x 14 position embedding is resampled, as timm does), so reduced CPU sizes train the same
weights the 224 px recipe does.

Blocks, as the ResNets' four stages: 0 is the image; block k (1..4) is the token sequence
``[m, 1 + r, d]`` (class token first) after transformer blocks ``3(k-1) .. 3k - 1`` (depth / 4
per block; block 1 includes the patch embedding and the position embedding, as the ResNet's
block 1 includes its stem). Block 4 is the final LayerNorm's output: the embedding. Manifold
mixup at blocks 0, 1, 2 mixes the image or the tokens after transformer blocks 3 and 6.

The pooled embedding is the class token (timm's ``global_pool='token'``, the default) or the
mean of the patch tokens (``'avg'``; the LayerNorm stays on the tokens, timm's ``fc_norm=False``,
so the per-token logits of dense MultiMix and the pooled logits see the same normalised tokens).
Dense MultiMix treats the ``r = (S / 16)^2`` patch tokens (14 x 14 at 224 px) as the positions
of a feature map and applies the classifier per token (paper sec. 3.4, "patch vs. image
embeddings"); mixing at an earlier block mixes the class token with the mean over positions of
the per-position weights, which keeps each of its columns on the simplex.
"""
from __future__ import annotations

import math

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from mmtransfer import mixing
from mmtransfer.models.encoder import NUM_BLOCKS, MapEncoder, block_range

#: timm's ``vit_small_patch16_224`` model arguments (timm/models/vision_transformer.py).
VIT_S16 = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6)
TIMM_NAME = 'vit_small_patch16_224'
POOLS = ('token', 'avg')


class ViTEncoder(VisionTransformer, MapEncoder):
    """timm's ViT-S/16 without a head, run block by block.

    Args:
        pool: ``'token'`` (the class token, timm's default) or ``'avg'`` (mean of the patch
            tokens) as the embedding the classifier reads.
        drop_path_rate: stochastic depth (timm's argument; 0 here, DeiT uses 0.1 for ViT-S).
    """

    whole_windows = True

    def __init__(self, pool: str = 'token', drop_path_rate: float = 0.0):
        if pool not in POOLS:
            raise ValueError(f'vit pool must be one of {POOLS}, got {pool!r}')
        super().__init__(img_size=224, num_classes=0, global_pool=pool, fc_norm=False,
                         dynamic_img_size=True, drop_path_rate=drop_path_rate, **VIT_S16)
        self.out_channels = self.embed_dim
        depth = len(self.blocks)
        self._stages = [range(depth * (k - 1) // NUM_BLOCKS, depth * k // NUM_BLOCKS)
                        for k in range(1, NUM_BLOCKS + 1)]

    def forward(self, x: Tensor, start: int = 0, end: int = NUM_BLOCKS) -> Tensor:
        """Runs blocks ``start+1 .. end``: ``x`` is the image ``[m, 3, S, S]`` (block 0) or a
        token sequence ``[m, 1 + r, d]``; returns block ``end``'s tokens."""
        for k in block_range(start, end):
            if k == 1:
                x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
            for i in self._stages[k - 1]:
                x = self.blocks[i](x)
            if k == NUM_BLOCKS:
                x = self.norm(x)
        return x

    def pool(self, z: Tensor) -> Tensor:
        """``[m, 1 + r, d] -> [m, d]``: the class token, or the mean of the patch tokens."""
        return super().pool(z)

    def positions(self, h: Tensor) -> Tensor:
        """The patch tokens as a map: ``[m, 1 + r, d] -> [m, d, sqrt(r), sqrt(r)]``."""
        patches = h[:, self.num_prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f'{patches.shape[1]} patch tokens do not form a square grid')
        return patches.transpose(1, 2).reshape(h.shape[0], -1, side, side)

    def with_positions(self, h: Tensor, maps: Tensor, w: Tensor) -> Tensor:
        """Tokens of ``n`` dense mixtures: patch tokens from ``maps [n, d, s, s]``, the class
        token mixed from ``h``'s with ``w [r, m, n]`` averaged over positions."""
        prefix = mixing.mix(h[:, :self.num_prefix_tokens], w.mean(0))            # [n, 1, d]
        return torch.cat([prefix, maps.flatten(2).transpose(1, 2)], dim=1)

    def class_token(self, h: Tensor) -> Tensor:
        return h[:, 0]

    def check_image_size(self, size: int) -> None:
        patch = self.patch_embed.patch_size[0]
        if size % patch:
            raise ValueError(f'image size {size} is not a multiple of the ViT patch size {patch}')
