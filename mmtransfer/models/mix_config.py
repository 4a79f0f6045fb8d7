"""The pretraining methods and their options, validated once at construction.

A method is a preset of three switches; the switches can also be set by hand on any method
(e.g. ``method='mixup', dense=True`` is the paper's Table 9 "Mixup + dense loss").
With distillation, the teacher's view is mixed exactly as the student's: same draw, same block.

    method          mixing per mini-batch                      dense  distill
    baseline        none                                       no     no
    mixup           input mixup, lambda ~ Beta(a, a)           no     no
    cutmix          CutMix                                     no     no
    manifold_mixup  mixup at a random block in {0, 1, 2}       no     no
    multimix        MultiMix with prob p, else input mixup     no     no
    dense           dense MultiMix with prob p, else mixup     yes    no   (mixup half: pooled loss)
    distill         MultiMix with prob p, else mixup           no     yes
    dense_distill   dense MultiMix with prob p, else mixup     yes    yes
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

METHODS = {
    'baseline': ('none', False, False),
    'mixup': ('mixup', False, False),
    'cutmix': ('cutmix', False, False),
    'manifold_mixup': ('manifold_mixup', False, False),
    'multimix': ('multimix', False, False),
    'dense': ('multimix', True, False),
    'distill': ('multimix', False, True),
    'dense_distill': ('multimix', True, True),
}
ATTENTION_U = ('gap', 'cam', 'none', 'token')
ATTENTION_H = ('relu_l1', 'softmax')
TEACHER_ATTENTION = ('own', 'student')


class MixConfigError(ValueError):
    """An invalid mixing option; the message names the config key."""


@dataclass
class MixConfig:
    """Options of every method (``model.mix`` in the configs); defaults are the paper's.

    Attributes:
        method: one of :data:`METHODS`.
        n: number of mixed embeddings per device and mini-batch (MultiMix's n, paper: 1000).
        alpha: Dirichlet concentration: a ``(lo, hi)`` range, ``alpha_k ~ U[lo, hi]`` drawn per
            column (paper: (0.5, 2.0)), or one float for a fixed alpha.
        prob: probability of a MultiMix batch; the others use input mixup (paper: 0.5).
        block: interpolation block for MultiMix, 0 (input) .. 4 (last block, the paper's choice);
            dense MultiMix takes 1 .. 4 (Fig. 3a): below 4 the feature maps are mixed per
            position at that block, the rest of the network runs on the n mixtures, and the
            weights are averaged down to the embedding grid for the loss.
        pair_alpha: ``lambda ~ Beta(pair_alpha, pair_alpha)`` for mixup / CutMix / manifold mixup.
        manifold_blocks: blocks manifold mixup draws from uniformly (Verma et al.: 0, 1, 2).
        attention_u, attention_h: dense MultiMix's spatial attention (eq. 10): u in
            ``gap | cam | none | token``, h in ``relu_l1 | softmax`` (paper: gap, relu_l1).
            ``token`` is a ViT's class token at the mixing block (our default for ViT-S/16:
            the image embedding its classifier reads, as GAP is a CNN's).
        dense_resolution: side of the dense grid by adaptive average pooling of the embedding
            (ours: overlapping windows when the side does not divide, 7 -> 4 or 2); ``None`` =
            the native feature map (7 at 224 px).
        dense_pool: kernel ``k`` of a non-overlapping ``k x k`` average pooling (stride ``k``,
            the last window clipped) of the embedding for a coarser dense grid: 7 -> 4 (k = 2),
            7 -> 2 (k = 4), as the paper describes; ``None`` = no pooling. Not with
            ``dense_resolution``.
        detach_attention: stop the gradient through the attention ``a`` (eq. 10). The paper does
            not say; ``False`` (ours) lets it flow, which at random init carries about a quarter
            of the gradient norm with respect to the embedding (issue 8's measurement). Flowing,
            it trains the attention to gather the examples on a few positions (a mixed point of
            m = 64 then holds ~10 effective examples instead of ~35); with MultiMix on every
            batch (``prob=1``, measured at ``alpha=0.1``) that kept the classifier near chance
            where ``True`` learned (docs/findings.md, "The gradient through the attention
            collapses it"; ``benchmarks/learning_probe.py``).
        teacher_attention: dense distillation: ``'own'`` (the paper) mixes the teacher's
            logits with weights built from the teacher's attention on its own embedding and the
            same Lambda; ``'student'`` reuses the student's weights (the pre-fidelity behaviour,
            kept as an ablation).
        pairwise_dense_loss: dense loss on the pairwise (input mixup, CutMix, manifold mixup,
            none) batches. ``None`` = the paper: on for the pairwise methods with ``dense=True``
            (Table 9, "Mixup + dense loss"), off for the input-mixup half of ``dense`` and
            ``dense_distill``, which use the ordinary pooled mixup loss.
        gamma: weight of the label term, ``gamma * H(Y~, P~) + (1 - gamma) * H(P~', P~)`` (0.5).
        ema_momentum: teacher update ``t <- (1 - mu) t + mu s`` (mmengine convention); the paper
            does not state it, we use 0.001 (decay 0.999).
        dense, distill: ``None`` = the method's preset, or force the switch (Table 9).
        start_iter: the first training iteration (0-based, mmengine's ``runner.iter``) that
            mixes; the earlier ones train on unmixed images (cross-entropy, and with
            distillation ``H(P', P)`` on unmixed predictions). Paper: 0. The CPU demo mixes only
            in the second half of its 1,000 steps (docs/demo.md), as mmdet's TOOD head
            keeps its warm-up assigner for its first epochs.
    """

    method: str = 'baseline'
    n: int = 1000
    alpha: float | tuple[float, float] = (0.5, 2.0)
    prob: float = 0.5
    block: int = 4
    pair_alpha: float = 1.0
    manifold_blocks: tuple[int, ...] = (0, 1, 2)
    attention_u: str = 'gap'
    attention_h: str = 'relu_l1'
    dense_resolution: int | None = None
    dense_pool: int | None = None
    detach_attention: bool = False
    teacher_attention: str = 'own'
    pairwise_dense_loss: bool | None = None
    gamma: float = 0.5
    ema_momentum: float = 0.001
    dense: bool | None = None
    distill: bool | None = None
    start_iter: int = 0
    mixing: str = field(init=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise MixConfigError(
                f'method: unknown {self.method!r}; choose from {", ".join(METHODS)}')
        self.mixing, dense, distill = METHODS[self.method]
        self.dense = dense if self.dense is None else bool(self.dense)
        self.distill = distill if self.distill is None else bool(self.distill)
        if self.pairwise_dense_loss is None:
            self.pairwise_dense_loss = self.dense and self.mixing != 'multimix'
        self.pairwise_dense_loss = bool(self.pairwise_dense_loss)
        if isinstance(self.alpha, (list, tuple)):
            if len(self.alpha) != 2:
                raise MixConfigError(f'mix.alpha: expected a float or (lo, hi), got {self.alpha}')
            self.alpha = (float(self.alpha[0]), float(self.alpha[1]))
            lo, hi = self.alpha
        else:
            lo = hi = self.alpha = float(self.alpha)
        self.manifold_blocks = tuple(int(b) for b in self.manifold_blocks)
        checks = [
            (isinstance(self.n, int) and self.n >= 1,
             f'mix.n must be an integer >= 1, got {self.n}'),
            (lo > 0, f'mix.alpha must be > 0, got {self.alpha}'),
            (lo <= hi, f'mix.alpha range is inverted: lo={lo} > hi={hi}'),
            (0.0 <= self.prob <= 1.0, f'mix.prob must be in [0, 1], got {self.prob}'),
            (self.block in range(5), f'mix.block must be in 0..4, got {self.block}'),
            (self.pair_alpha > 0, f'mix.pair_alpha must be > 0, got {self.pair_alpha}'),
            (len(self.manifold_blocks) > 0 and all(b in range(4) for b in self.manifold_blocks),
             f'mix.manifold_blocks must be a non-empty subset of 0..3, got {self.manifold_blocks}'),
            (self.attention_u in ATTENTION_U,
             f'mix.attention_u must be one of {ATTENTION_U}, got {self.attention_u!r}'),
            (self.attention_h in ATTENTION_H,
             f'mix.attention_h must be one of {ATTENTION_H}, got {self.attention_h!r}'),
            (self.dense_resolution is None or self.dense_resolution >= 1,
             f'mix.dense_resolution must be >= 1 or None, got {self.dense_resolution}'),
            (self.dense_pool is None or self.dense_pool >= 1,
             f'mix.dense_pool must be a kernel size >= 1 or None, got {self.dense_pool}'),
            (self.dense_pool is None or self.dense_resolution is None,
             'mix.dense_pool and mix.dense_resolution both set: choose one grid'),
            (self.teacher_attention in TEACHER_ATTENTION,
             f'mix.teacher_attention must be one of {TEACHER_ATTENTION}, '
             f'got {self.teacher_attention!r}'),
            (0.0 <= self.gamma <= 1.0, f'mix.gamma must be in [0, 1], got {self.gamma}'),
            (0.0 < self.ema_momentum < 1.0,
             f'mix.ema_momentum must be in (0, 1), got {self.ema_momentum}'),
            (isinstance(self.start_iter, int) and self.start_iter >= 0,
             f'mix.start_iter must be an integer >= 0, got {self.start_iter}'),
            (not (self.dense and self.mixing == 'multimix' and self.block == 0),
             'mix.block must be in 1..4 for dense MultiMix (it mixes feature maps), got 0'),
            (not (self.dense and self.block < 4 and self.attention_u == 'cam'),
             f"mix.attention_u='cam' needs block 4 (the classifier reads the embedding), "
             f'got block {self.block}'),
        ]
        for ok, message in checks:
            if not ok:
                raise MixConfigError(message)

    @classmethod
    def from_dict(cls, cfg: dict | None) -> MixConfig:
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise MixConfigError(f'mix: unknown option {unknown[0]!r}; '
                                 f'known: {", ".join(sorted(known))}')
        return cls(**cfg)
