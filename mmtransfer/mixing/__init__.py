"""Functional core of MultiMix (Venkataramanan et al., NeurIPS 2023) and pairwise baselines.

Sections and equations are numbered as in the paper's ICLR-format arXiv text (2206.14868),
which also describes the distillation: MultiMix sec. 3.2, distillation 3.3, dense MultiMix 3.4
(docs/fidelity.md, "Which text of the paper").

Pure torch functions, batch first, no state: call them from any training loop.

MultiMix (eq. 6-7)::

    lam = sample_lambda(m, n)                          # [m, n], Dirichlet columns
    z_mix, y_mix = multimix(z, one_hot(labels), lam)   # reference: [n, d], [n, c]
    loss = mixed_label_cross_entropy(mix(head(z), lam), labels, lam)   # fast, linear head

Dense MultiMix (eq. 10-14)::

    lam = sample_lambda_dense(m, n, r)                 # [r, m, n]
    attn = spatial_attention(z, u='gap', h='relu_l1')  # [m, r]
    w, s = dense_mixing_weights(lam, attn)             # [r, m, n], [n, r]
    loss = dense_label_cross_entropy(dense_mix(head(z), w), labels, w, s)
"""
from .dense import (
    dense_mix,
    dense_mixing_weights,
    dense_multimix,
    pool_positions,
    spatial_attention,
)
from .dense_chunked import dense_mixed_label_cross_entropy, dense_mixed_soft_cross_entropy
from .losses import (
    dense_cross_entropy,
    dense_label_cross_entropy,
    mixed_label_cross_entropy,
    soft_cross_entropy,
)
from .multimix import mix, multimix
from .pairwise import box_lambda, cutmix, pair_mix, pair_mixup, paste_box, sample_cutmix_box
from .sampling import sample_lambda, sample_lambda_dense, sample_pair_lambda

__all__ = [
    'sample_lambda', 'sample_lambda_dense', 'sample_pair_lambda',
    'mix', 'multimix',
    'spatial_attention', 'dense_mixing_weights', 'dense_mix', 'dense_multimix', 'pool_positions',
    'soft_cross_entropy', 'mixed_label_cross_entropy', 'dense_cross_entropy',
    'dense_label_cross_entropy', 'dense_mixed_label_cross_entropy',
    'dense_mixed_soft_cross_entropy',
    'pair_mix', 'pair_mixup', 'sample_cutmix_box', 'paste_box', 'box_lambda', 'cutmix',
]
