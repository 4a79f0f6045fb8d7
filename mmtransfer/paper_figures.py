"""The MultiMix paper's own figures, for the column beside our measured cells.

Quoted from the running text of the ICLR-format version of Venkataramanan, Kijak, Amsaleg and
Avrithis, "Embedding Space Interpolation Beyond Mini-Batch, Beyond Pairs and Beyond Examples";
the cells of the paper's tables are not reproduced. Only figures whose setting is the one our
method runs are kept, each with where the text states it.
They are single published numbers: the paper reports the mean of 5 runs for classification.
"""
from __future__ import annotations

PAPER = ('Venkataramanan, Kijak, Amsaleg and Avrithis, "Embedding Space Interpolation Beyond '
         'Mini-Batch, Beyond Pairs and Beyond Examples"')

# (recipe, method) -> (top-1 %, where the paper's text states it)
PAPER_TOP1: dict[tuple[str, str], tuple[float, str]] = {
    ('cifar100_preactresnet18', 'baseline'): (
        76.76, 'appendix, Table 9 discussion ("76.76 → 78.16")'),
    ('cifar100_preactresnet18', 'manifold_mixup'): (
        80.20, 'appendix, Table 9 discussion ("80.20 → 80.87")'),
    ('cifar100_preactresnet18', 'distill'): (
        82.28, 'appendix, two-stage distillation discussion: MultiMix with online '
               'self-distillation (Table 9)'),
    ('cifar100_preactresnet18', 'dense_distill'): (
        82.52, 'sec. 4.4, α ablation: dense MultiMix + distillation (Table 1)'),
}
