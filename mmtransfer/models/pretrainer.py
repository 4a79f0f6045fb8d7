"""The one mmengine model of pretraining: picks the mixing per mini-batch, calls mixing/.

Every method is computed on the *logits*: the classifier is linear and each column of Lambda
sums to 1, so ``head(Z Lambda) = head(Z) Lambda`` (eq. 6 moved past the head). MultiMix then
costs an ``[m, c] -> [n, c]`` matmul instead of running the head on n embeddings, and the
loss with one-hot targets only needs the log-probabilities at the m labels
(:func:`~mmtransfer.mixing.mixed_label_cross_entropy`); the reference functions of
:mod:`mmtransfer.mixing` are the ground truth this path is tested against.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import Tensor, nn

from mmtransfer import mixing
from mmtransfer.data.imagefolder import MultiViewDataPreprocessor  # registers it too
from mmtransfer.models.encoder import NUM_BLOCKS, LinearHead, ResNetEncoder
from mmtransfer.models.mix_config import MixConfig
from mmtransfer.models.teacher import EMATeacher


def _autocast_off(device: torch.device):
    """Float32 region inside mixed precision: for sums over many terms (attention scores
    ``z^T u`` add d products and overflow float16) and for targets meant to be exact."""
    return torch.autocast(device.type, enabled=False)


@dataclass
class MixedBatch:
    """What a mixing step produced: the student's mixed logits ``[n, c]`` / ``[n, c, r]``, its
    label loss, how to mix the teacher's logits with the same weights, and the dense weights s."""

    logits: Tensor
    loss: Tensor
    mix_like: Callable[[Tensor], Tensor]
    s: Tensor | None = None


class Classifier(nn.Module):
    """``encoder`` (ResNet up to block 4) + global average pooling + linear ``head``."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.encoder = ResNetEncoder(arch)
        self.head = LinearHead(self.encoder.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x).mean((2, 3)))


@MODELS.register_module()
class MixPretrainer(BaseModel):
    """ResNet classifier trained with one of the mixing methods of :mod:`mmtransfer.mixing`.

    ``forward(inputs[m, 3, H, W], labels[m], inputs2=None, mode)``: ``mode='loss'`` returns the
    loss dict (``loss_cls`` and, with distillation, ``loss_distill``, already weighted by
    gamma and 1 - gamma); ``mode='predict'`` one ``dict(pred, gt)`` per image for the
    accuracy metric; ``mode='tensor'`` the logits ``[m, c]``.

    Args:
        arch: torchvision ResNet name.
        num_classes: c.
        mix: options of :class:`~mmtransfer.models.mix_config.MixConfig` (method included).
    """

    def __init__(self, arch: str = 'resnet50', num_classes: int = 1000, mix: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor or MultiViewDataPreprocessor(),
                         init_cfg=init_cfg)
        self.mix = MixConfig.from_dict(mix)
        self.num_classes = num_classes
        self.student = Classifier(arch, num_classes)
        self.teacher = EMATeacher(self.student, self.mix.ema_momentum) if self.mix.distill else None

    # ------------------------------------------------------------------ interface
    def forward(self, inputs: Tensor, labels: Tensor | None = None, inputs2: Tensor | None = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, labels, inputs2)
        logits = self.student(inputs)
        if mode == 'predict':
            return [dict(pred=p, gt=g) for p, g in zip(logits.detach(), labels, strict=False)]
        return logits

    def update_teacher(self) -> None:
        """EMA step of the teacher (called by ``TeacherEMAHook`` after each optimizer step)."""
        if self.teacher is not None:
            self.teacher.update_parameters(self.student)

    # ------------------------------------------------------------------ the loss
    def loss(self, inputs: Tensor, labels: Tensor, inputs2: Tensor | None = None) -> dict:
        cfg = self.mix
        if cfg.distill and inputs2 is None:
            raise ValueError('distillation needs a second view: set the dataset num_views=2')
        kind = cfg.mixing
        if kind == 'multimix' and random.random() >= cfg.prob:
            kind = 'mixup'  # the paper: MultiMix with probability p, input mixup otherwise
        mixed = self._multimix(inputs, labels) if kind == 'multimix' else \
            self._pairwise(kind, inputs, labels)
        if not cfg.distill:
            return dict(loss_cls=mixed.loss)
        with torch.no_grad():  # stop-gradient: the teacher sees the second view, mixed alike
            teacher = self.teacher.module
            teacher_logits = self._logits(teacher, teacher.encoder(inputs2))  # autocast dtype
            with _autocast_off(inputs2.device):  # mix and softmax the target in float32
                target = mixed.mix_like(teacher_logits.float()).softmax(dim=1)
        loss_distill = self._soft_loss(mixed.logits, target, mixed.s)
        return dict(loss_cls=cfg.gamma * mixed.loss, loss_distill=(1 - cfg.gamma) * loss_distill)

    def _logits(self, net: Classifier, z: Tensor) -> Tensor:
        """Block-4 embedding ``[m, d, h, w]`` -> logits ``[m, c]``, or ``[m, c, r]`` when dense."""
        if not self.mix.dense:
            return net.head(z.mean((2, 3)))
        return net.head(self._dense_grid(z).flatten(2))

    def _dense_grid(self, z: Tensor) -> Tensor:
        """The embedding on the dense grid: native, or average-pooled to ``dense_resolution``."""
        res = self.mix.dense_resolution
        if res is None:
            return z
        if res > min(z.shape[-2:]):
            raise ValueError(f'mix.dense_resolution={res} is larger than the feature map '
                             f'{tuple(z.shape[-2:])}')
        return F.adaptive_avg_pool2d(z, res)

    def _multimix(self, x: Tensor, labels: Tensor) -> MixedBatch:
        """MultiMix (eq. 6-7) or dense MultiMix (eq. 11-14) of the whole mini-batch into n."""
        cfg, net = self.mix, self.student
        m = x.shape[0]
        if not cfg.dense:
            lam = mixing.sample_lambda(m, cfg.n, cfg.alpha, device=x.device)       # [m, n]
            if cfg.block == NUM_BLOCKS:
                logits_mix = mixing.mix(net.head(net.encoder(x).mean((2, 3))), lam)
            else:  # interpolate an intermediate block, run the rest of the network on n
                h = mixing.mix(net.encoder(x, 0, cfg.block), lam)
                logits_mix = net.head(net.encoder(h, cfg.block).mean((2, 3)))
            loss = mixing.mixed_label_cross_entropy(logits_mix, labels, lam)
            return MixedBatch(logits_mix, loss, lambda t: mixing.mix(t, lam))
        z = self._dense_grid(net.encoder(x))                                         # [m, d, h, w]
        logits = net.head(z.flatten(2))                                              # [m, c, r]
        with _autocast_off(x.device):  # eq. 10-13 in float32 (or wider) under mixed precision
            z = z.flatten(2).to(torch.promote_types(z.dtype, torch.float32))         # [m, d, r]
            onehot = (F.one_hot(labels, self.num_classes).to(z.dtype)
                      if cfg.attention_u == 'cam' else None)
            attn = mixing.spatial_attention(z, u=cfg.attention_u, h=cfg.attention_h,
                                            classifier_weight=net.head.weight, y=onehot)  # [m, r]
            lam = mixing.sample_lambda_dense(m, cfg.n, logits.shape[-1], cfg.alpha,
                                             device=x.device)                        # [r, m, n]
            weights, s = mixing.dense_mixing_weights(lam, attn.float())  # [r, m, n], [n, r]
        logits_mix = mixing.dense_mix(logits, weights.to(logits.dtype))              # [n, c, r]
        loss = mixing.dense_label_cross_entropy(logits_mix, labels, weights, s)
        return MixedBatch(logits_mix, loss, lambda t: mixing.dense_mix(t, weights.to(t.dtype)), s)

    def _pairwise(self, kind: str, x: Tensor, labels: Tensor) -> MixedBatch:
        """No mixing, input mixup, CutMix or manifold mixup of the mini-batch with a permutation."""
        cfg, net = self.mix, self.student
        m = x.shape[0]
        y = F.one_hot(labels, self.num_classes).float()
        if kind == 'none':
            logits = self._logits(net, net.encoder(x))
            return MixedBatch(logits, self._soft_loss(logits, y), lambda t: t)
        lam = mixing.sample_pair_lambda(cfg.pair_alpha)
        index = torch.randperm(m, device=x.device)
        if kind == 'mixup':
            x, y = mixing.pair_mixup(x, y, lam, index)
            z = net.encoder(x)
        elif kind == 'cutmix':
            x, y, lam = mixing.cutmix(x, y, lam, index)
            z = net.encoder(x)
        elif kind == 'manifold_mixup':
            block = random.choice(cfg.manifold_blocks)
            h, y = mixing.pair_mixup(net.encoder(x, 0, block), y, lam, index)
            z = net.encoder(h, block)
        else:
            raise ValueError(f'unknown mixing {kind!r}')
        logits = self._logits(net, z)
        return MixedBatch(logits, self._soft_loss(logits, y),
                          lambda t: lam * t + (1 - lam) * t[index])

    @staticmethod
    def _soft_loss(logits: Tensor, target: Tensor, s: Tensor | None = None) -> Tensor:
        """Cross-entropy with soft targets; dense logits use eq. 14 with s (uniform when None)."""
        if logits.dim() == 2:
            return mixing.soft_cross_entropy(logits, target)
        if target.dim() == 2:  # one target per image, the same at every position
            target = target[:, :, None].expand_as(logits)
        if s is None:
            s = logits.new_ones(logits.shape[0], logits.shape[2])
        return mixing.dense_cross_entropy(logits, target, s)
