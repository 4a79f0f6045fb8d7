"""The one mmengine model of pretraining: picks the mixing per mini-batch, calls mixing/.

Each mini-batch draws its mixing once (:class:`MixDraw`: MultiMix's Lambda, or a pairwise
lambda, permutation, CutMix box and block) and :meth:`MixPretrainer._forward_mixed` applies it to
a network and a view: the student on view 1 and, with distillation, the EMA teacher on view 2,
so the teacher mixes exactly as the student does (paper sec. 4.4 and appendix).

MultiMix at the last block is computed on the *logits*: the classifier is linear and each column
of Lambda sums to 1, so ``head(Z Lambda) = head(Z) Lambda`` (eq. 6 moved past the head). It then
costs an ``[m, c] -> [n, c]`` matmul instead of running the head on n embeddings, and the loss
with one-hot targets only needs the log-probabilities at the m labels
(:func:`~mmtransfer.mixing.mixed_label_cross_entropy`); the reference functions of
:mod:`mmtransfer.mixing` are the ground truth this path is tested against.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import Tensor, nn

from mmtransfer import mixing
from mmtransfer.data.imagefolder import MultiViewDataPreprocessor  # registers it too
from mmtransfer.models.encoder import NUM_BLOCKS, LinearHead
from mmtransfer.models.factory import VITS, build_encoder
from mmtransfer.models.mix_config import MixConfig, MixConfigError
from mmtransfer.models.teacher import EMATeacher


def _autocast_off(device: torch.device):
    """Float32 region inside mixed precision: for sums over many terms (attention scores
    ``z^T u`` add d products and overflow float16) and for targets meant to be exact."""
    return torch.autocast(device.type, enabled=False)


def _training_iter() -> int:
    """The current training iteration, as mmengine's RuntimeInfoHook posts it (0 outside a
    Runner; after ``--resume`` the restored one)."""
    return MessageHub.get_current_instance().get_info('iter', 0)


@dataclass
class MixDraw:
    """The random draws of one mini-batch, applied alike to the student's view and, with
    distillation, to the teacher's (paper sec. 4.4: "we interpolate at the same layer for both
    the teacher and the student").

    Attributes:
        kind: ``'none' | 'mixup' | 'cutmix' | 'manifold_mixup' | 'multimix'``.
        block: where the mixing happens, 0 (the input) .. 4 (the embedding).
        pair_lam: pairwise lambda (CutMix: the kept fraction of the clipped box).
        index: ``[m]`` partner of each example (pairwise).
        box: CutMix's ``(y1, y2, x1, x2)``.
        lam: MultiMix's ``Lambda``, ``[m, n]`` or ``[r, m, n]`` when dense; drawn at its first
            use, when the grid size ``r`` is known, and reused for the teacher.
    """

    kind: str
    block: int = 0
    pair_lam: float = 1.0
    index: Tensor | None = None
    box: tuple[int, int, int, int] | None = None
    lam: Tensor | None = None


@dataclass
class Mixed:
    """One network's output on one view under a draw.

    Attributes:
        mixed: mixed logits, ``[n, c]`` or ``[n, c, r]`` (dense loss); ``None`` with ``base``.
        w, s: dense MultiMix's renormalised weights ``[r, m, n]`` and column sums ``[n, r]``
            on the loss grid (eq. 11-14).
        mix_w: the weights applied at the mixing block (``w`` itself at block 4).
        base: dense MultiMix at block 4: the unmixed per-position logits ``[m, c, r]``. The
            loss mixes them with ``w`` a block of positions at a time
            (:mod:`mmtransfer.mixing.dense_chunked`), never holding the ``[n, c, r]`` whole.
    """

    mixed: Tensor | None
    w: Tensor | None = None
    s: Tensor | None = None
    mix_w: Tensor | None = None
    base: Tensor | None = None

    @property
    def logits(self) -> Tensor:
        """The mixed logits; built here (``[n, c, r]``) only when ``base`` defers them."""
        return self.mixed if self.base is None else mixing.dense_mix(self.base, self.w)


class Classifier(nn.Module):
    """``encoder`` (:func:`~mmtransfer.models.factory.build_encoder`'s ``arch``, up to block 4)
    + its pooling (GAP; a ViT's class token) + linear ``head``: ``[m, 3, H, W] -> [m, c]``."""

    def __init__(self, arch: str, num_classes: int, last_stride: int = 2,
                 width: int | None = None):
        super().__init__()
        self.encoder = build_encoder(arch, width=width, last_stride=last_stride)
        self.head = LinearHead(self.encoder.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder.pool(self.encoder(x)))


@MODELS.register_module()
class MixPretrainer(BaseModel):
    """Classifier trained with one of the mixing methods of :mod:`mmtransfer.mixing`.

    ``forward(inputs[m, 3, H, W], labels[m], inputs2=None, mode)``: ``mode='loss'`` returns the
    loss dict (``loss_cls`` and, with distillation, ``loss_distill``, already weighted by
    gamma and 1 - gamma); ``mode='predict'`` one ``dict(pred, gt)`` per image for the
    accuracy metric; ``mode='tensor'`` the logits ``[m, c]``.

    Args:
        arch: encoder name: a torchvision ResNet (``resnet50``), or a CIFAR network
            (``preactresnet18``, ``wrn16_8``); see :func:`~mmtransfer.models.factory.build_encoder`.
        num_classes: c.
        mix: options of :class:`~mmtransfer.models.mix_config.MixConfig` (method included).
        last_stride: stride of the last stage; 1 doubles the dense grid (the paper's 8x8
            ablation), see :class:`~mmtransfer.models.encoder.ResNetEncoder`.
        width: stem / first-stage channels of a ResNet or PreActResNet (``None``: 64; the CPU
            demo uses 32), see :func:`~mmtransfer.models.encoder.build_torchvision_resnet`; a
            WRN's is in its name.
        channels_last: keep the weights in ``channels_last`` memory format (faster convolutions
            on recent GPUs; pair it with the data preprocessor's ``channels_last``).
    """

    def __init__(self, arch: str = 'resnet50', num_classes: int = 1000, mix: dict | None = None,
                 last_stride: int = 2, width: int | None = None, channels_last: bool = False,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor or MultiViewDataPreprocessor(),
                         init_cfg=init_cfg)
        self.mix = MixConfig.from_dict(mix)
        self.num_classes = num_classes
        self.student = Classifier(arch, num_classes, last_stride, width)
        check_attention_query(self.mix, arch)
        if channels_last:
            self.student.to(memory_format=torch.channels_last)
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
        """``H(Y~, P~)``, and with distillation ``gamma H(Y~, P~) + (1 - gamma) H(P~', P~)``
        where ``P~'`` is the teacher's prediction on the second view, mixed with the same draw
        at the same block (sec. 3.3, 4.4)."""
        cfg = self.mix
        if cfg.distill and inputs2 is None:
            raise ValueError('distillation needs a second view: set the dataset num_views=2')
        draw = self._draw(inputs)
        student = self._forward_mixed(self.student, inputs, labels, draw)
        loss_cls = self._label_loss(student, labels, draw)
        if not cfg.distill:
            return dict(loss_cls=loss_cls)
        with torch.no_grad():  # stop-gradient: the teacher's own view, the same draw
            shared_w = student.mix_w if cfg.teacher_attention == 'student' else None
            teacher = self._forward_mixed(self.teacher.module, inputs2, labels, draw, shared_w)
        if student.base is not None:  # dense at block 4: both mixed inside the loss
            loss_distill = mixing.dense_mixed_soft_cross_entropy(
                student.base, student.w, student.s, teacher.base, teacher.w)
        else:
            with torch.no_grad(), _autocast_off(inputs2.device):  # the target in float32
                target = teacher.mixed.float().softmax(dim=1)
            loss_distill = self._soft_loss(student.mixed, target, student.s)
        return dict(loss_cls=cfg.gamma * loss_cls, loss_distill=(1 - cfg.gamma) * loss_distill)

    def _draw(self, x: Tensor) -> MixDraw:
        """This mini-batch's mixing: MultiMix with probability ``prob``, else input mixup
        (the paper), or the method's pairwise mixing; its lambda, partners, box and block.
        No mixing (``'none'``) before ``start_iter`` (the iteration RuntimeInfoHook posts)."""
        cfg = self.mix
        kind = cfg.mixing
        if cfg.start_iter and _training_iter() < cfg.start_iter:
            kind = 'none'
        if kind == 'multimix' and random.random() >= cfg.prob:
            kind = 'mixup'
        if kind in ('none', 'multimix'):
            return MixDraw(kind, block=cfg.block if kind == 'multimix' else 0)
        lam = mixing.sample_pair_lambda(cfg.pair_alpha)
        index = torch.randperm(x.shape[0], device=x.device)
        if kind == 'mixup':
            return MixDraw(kind, 0, lam, index)
        if kind == 'cutmix':
            height, width = x.shape[-2:]
            box = mixing.sample_cutmix_box(height, width, lam)
            return MixDraw(kind, 0, mixing.box_lambda(box, height, width), index, box)
        if kind == 'manifold_mixup':
            return MixDraw(kind, random.choice(cfg.manifold_blocks), lam, index)
        raise ValueError(f'unknown mixing {kind!r}')

    def _forward_mixed(self, net: Classifier, x: Tensor, labels: Tensor, draw: MixDraw,
                       shared_w: Tensor | None = None) -> Mixed:
        """Run ``net`` on ``x`` [m, 3, H, W] with ``draw``'s mixing applied at its block."""
        if draw.kind == 'multimix':
            if self.mix.dense:
                return self._dense_multimix(net, x, labels, draw, shared_w)
            return self._multimix(net, x, draw)
        if draw.kind == 'mixup':
            x = mixing.pair_mix(x, draw.pair_lam, draw.index)
        elif draw.kind == 'cutmix':
            x = mixing.paste_box(x, draw.index, draw.box)
        h = net.encoder(x, 0, draw.block)
        if draw.kind == 'manifold_mixup':
            h = mixing.pair_mix(h, draw.pair_lam, draw.index)
        return Mixed(self._logits(net, net.encoder(h, draw.block), self.mix.pairwise_dense_loss))

    def _lambda(self, draw: MixDraw, m: int, r: int | None, device: torch.device) -> Tensor:
        """The draw's Lambda, ``[m, n]`` (``r=None``) or ``[r, m, n]``, sampled at first use."""
        if draw.lam is None:
            cfg = self.mix
            draw.lam = (mixing.sample_lambda(m, cfg.n, cfg.alpha, device=device) if r is None
                        else mixing.sample_lambda_dense(m, cfg.n, r, cfg.alpha, device=device))
        return draw.lam

    def _multimix(self, net: Classifier, x: Tensor, draw: MixDraw) -> Mixed:
        """MultiMix, eq. 6-7: ``Z~ = Z Lambda`` at ``draw.block``, the rest of the network on the
        n mixtures. At block 4 on the logits: ``head(Z Lambda) = head(Z) Lambda``."""
        h = net.encoder(x, 0, draw.block)
        lam = self._lambda(draw, x.shape[0], None, x.device)                    # [m, n]
        if draw.block == NUM_BLOCKS:
            logits = net.head(net.encoder.pool(h))                               # [m, c]
            with _autocast_off(x.device):  # mixed logits (and so targets) in float32
                return Mixed(mixing.mix(logits.float(), lam.float()))
        z = net.encoder(mixing.mix(h, lam), draw.block)
        return Mixed(net.head(net.encoder.pool(z)))

    def _dense_multimix(self, net: Classifier, x: Tensor, labels: Tensor, draw: MixDraw,
                        shared_w: Tensor | None = None) -> Mixed:
        """Dense MultiMix, eq. 10-14, at ``draw.block`` (1..4) with ``net``'s own attention on
        its own feature maps (or ``shared_w``, weights already built from another network's)."""
        block, encoder = draw.block, net.encoder
        h = encoder(x, 0, block)
        maps = encoder.positions(h)                                                # [m, d, h, w]
        if block == NUM_BLOCKS:
            maps = self._dense_grid(maps)
        grid = tuple(maps.shape[-2:])
        w, s = (shared_w, None) if shared_w is not None else self._dense_weights(
            net, maps, labels, draw, encoder.class_token(h))
        if block == NUM_BLOCKS:  # mixed inside the loss, in float32
            logits = net.head(maps.flatten(2))                                     # [m, c, r]
            return Mixed(None, w, s, w, base=logits.float())
        # An earlier block: mix the maps per position, run the rest of the network on the n
        # mixtures, and average the weights down to the embedding grid for the loss.
        maps_mix = mixing.dense_mix(maps.flatten(2), w.to(maps.dtype)).reshape(
            w.shape[-1], -1, *grid)
        z = encoder(encoder.with_positions(h, maps_mix, w), block)
        z = self._dense_grid(encoder.positions(z))                                 # [n, d, h', w']
        out = tuple(z.shape[-2:])
        w_out = mixing.pool_positions(w, grid, out, dim=0)
        s_out = None if s is None else mixing.pool_positions(s, grid, out, dim=1)
        return Mixed(net.head(z.flatten(2)), w_out, s_out, w)

    def _dense_weights(self, net: Classifier, h: Tensor, labels: Tensor, draw: MixDraw,
                       class_token: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Eq. 10-13 on ``net``'s own maps ``h [m, d, h, w]``: attention ``a [m, r]``, then the
        renormalised ``M^_j`` and ``s`` for the draw's Lambda: ``([r, m, n], [n, r])``.
        ``class_token [m, d]`` is the query ``u`` of ``attention_u='token'`` (a ViT's)."""
        cfg = self.mix
        with _autocast_off(h.device):  # in float32 (or wider) under mixed precision
            wide = torch.promote_types(h.dtype, torch.float32)
            z = h.flatten(2).to(wide)                                               # [m, d, r]
            head_w = net.head.weight
            u = cfg.attention_u
            if u == 'token':  # the encoder has one (checked at construction)
                u = class_token.to(wide)                                            # [m, d]
            if cfg.detach_attention:
                z, head_w = z.detach(), head_w.detach()
                u = u.detach() if isinstance(u, Tensor) else u
            onehot = (F.one_hot(labels, self.num_classes).to(z.dtype)
                      if cfg.attention_u == 'cam' else None)
            attn = mixing.spatial_attention(z, u=u, h=cfg.attention_h,
                                            classifier_weight=head_w, y=onehot)
            lam = self._lambda(draw, z.shape[0], z.shape[-1], h.device)             # [r, m, n]
            return mixing.dense_mixing_weights(lam, attn.float())

    def _label_loss(self, mixed: Mixed, labels: Tensor, draw: MixDraw) -> Tensor:
        """``H(Y~, P~)`` with the targets mixed by the draw (gathered at the m labels)."""
        if draw.kind == 'multimix':
            if mixed.base is not None:
                return mixing.dense_mixed_label_cross_entropy(mixed.base, labels, mixed.w,
                                                              mixed.s)
            if self.mix.dense:
                return mixing.dense_label_cross_entropy(mixed.mixed, labels, mixed.w, mixed.s)
            return mixing.mixed_label_cross_entropy(mixed.mixed, labels, draw.lam)
        y = F.one_hot(labels, self.num_classes).float()
        if draw.kind != 'none':
            y = mixing.pair_mix(y, draw.pair_lam, draw.index)
        return self._soft_loss(mixed.mixed, y)

    def _logits(self, net: Classifier, z: Tensor, dense: bool) -> Tensor:
        """Block-4 embedding ``[m, d, h, w]`` -> logits ``[m, c]``, or ``[m, c, r]`` if dense."""
        if not dense:
            return net.head(net.encoder.pool(z))
        return net.head(self._dense_grid(net.encoder.positions(z)).flatten(2))

    def _dense_grid(self, z: Tensor) -> Tensor:
        """The embedding on the dense grid: native, ``k x k`` average pooling with stride k
        (``dense_pool``), or adaptive average pooling to ``dense_resolution``."""
        cfg = self.mix
        check_dense_grid(cfg, tuple(z.shape[-2:]), self.student.encoder.whole_windows)
        if cfg.dense_pool is not None:
            return F.avg_pool2d(z, cfg.dense_pool, ceil_mode=True)
        if cfg.dense_resolution is None:
            return z
        return F.adaptive_avg_pool2d(z, cfg.dense_resolution)

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


def check_attention_query(mix: MixConfig, arch: str) -> None:
    """:class:`MixConfigError` when ``attention_u='token'`` asks ``arch`` for a class token it
    does not have (only the ViTs have one)."""
    if mix.attention_u == 'token' and arch not in VITS:
        raise MixConfigError(f"mix.attention_u='token' needs a class token: arch {arch!r} "
                             "has none (use 'gap', or arch vit_s16)")


def check_dense_grid(mix: MixConfig, embedding_grid: tuple[int, int],
                     whole_windows: bool = False) -> None:
    """``ValueError`` naming the key when the ``(h, w)`` embedding grid leaves no dense grid
    under ``mix``: a pooling kernel or resolution larger than the map, an empty map, or, with
    ``whole_windows`` (a ViT's token grid), a ``dense_pool`` that does not divide the grid."""
    if min(embedding_grid) < 1:
        raise ValueError(f'the embedding grid is empty ({tuple(embedding_grid)}): the images '
                         'are too small for this network')
    for key, value in (('dense_pool', mix.dense_pool), ('dense_resolution', mix.dense_resolution)):
        if value is not None and value > min(embedding_grid):
            raise ValueError(f'mix.{key}={value} is larger than the feature map '
                             f'{tuple(embedding_grid)}')
    if whole_windows and mix.dense_pool is not None and any(
            side % mix.dense_pool for side in embedding_grid):
        raise ValueError(f'mix.dense_pool={mix.dense_pool} does not divide the '
                         f'{embedding_grid[0]}x{embedding_grid[1]} token grid: a token is in '
                         'one window only (choose a divisor of the grid side)')


def embedding_grid(arch: str, size: int, width: int | None = None,
                   last_stride: int = 2) -> tuple[int, int]:
    """``(h, w)`` of block 4 for ``size x size`` images: a forward pass on the meta device
    (shapes only, no memory, no arithmetic). ``ValueError`` when the images are too small for
    the network to produce any."""
    with torch.device('meta'):
        encoder = build_encoder(arch, width=width, last_stride=last_stride)
    encoder.check_image_size(size)
    try:
        z = encoder.positions(encoder(torch.empty(1, 3, size, size, device='meta')))
    except RuntimeError as err:
        raise ValueError(f'{size} px images are too small for {arch}: {err}') from None
    return tuple(z.shape[-2:])
