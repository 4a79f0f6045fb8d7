"""Out-of-distribution detection from a score that is higher in-distribution (the maximum
softmax probability, Hendrycks & Gimpel, 2017): AUROC, AUPR and detection accuracy.

In-distribution (ID) examples are the positives throughout.
"""
from __future__ import annotations

import torch
from torch import Tensor


def max_softmax_probability(logits: Tensor) -> Tensor:
    """``[N, c]`` logits -> ``[N]`` maximum softmax probability (float32)."""
    return logits.float().softmax(1).max(1).values


def _check(id_scores: Tensor, ood_scores: Tensor) -> None:
    if id_scores.numel() == 0 or ood_scores.numel() == 0:
        raise ValueError(f'need ID and OOD scores, got {id_scores.numel()} and '
                         f'{ood_scores.numel()}')


def auroc(id_scores: Tensor, ood_scores: Tensor) -> float:
    """Probability that a random ID example scores above a random OOD one (ties count 1/2):
    the area under the ROC curve, via the Mann-Whitney rank statistic."""
    _check(id_scores, ood_scores)
    scores = torch.cat([id_scores, ood_scores]).double()
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    uniq, inverse = scores.unique(return_inverse=True)              # average ranks of ties
    mean_rank = torch.zeros(len(uniq), dtype=scores.dtype).index_add_(0, inverse, ranks) / \
        torch.zeros(len(uniq), dtype=scores.dtype).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = mean_rank[inverse]
    n_id, n_ood = len(id_scores), len(ood_scores)
    return float((ranks[:n_id].sum() - n_id * (n_id + 1) / 2) / (n_id * n_ood))


def aupr(id_scores: Tensor, ood_scores: Tensor) -> float:
    """Area under the precision-recall curve with ID as positive (average precision: the mean
    of the precision at the rank of every ID example, ties broken pessimistically)."""
    _check(id_scores, ood_scores)
    scores = torch.cat([id_scores, ood_scores]).double()
    positive = torch.cat([torch.ones(len(id_scores)), torch.zeros(len(ood_scores))]).double()
    order = torch.argsort(positive, stable=True)                  # ties: negatives first
    order = order[torch.argsort(-scores[order], stable=True)]     # then by score, descending
    hits = positive[order]
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=hits.dtype)
    return float((precision * hits).sum() / hits.sum())


def detection_accuracy(id_scores: Tensor, ood_scores: Tensor) -> float:
    """``max_t 0.5 P_ID(s >= t) + 0.5 P_OOD(s < t)`` over every threshold ``t``."""
    _check(id_scores, ood_scores)
    thresholds = torch.cat([id_scores, ood_scores, torch.tensor([float('inf')])]).double()
    tpr = (id_scores.double()[None] >= thresholds[:, None]).double().mean(1)
    tnr = (ood_scores.double()[None] < thresholds[:, None]).double().mean(1)
    return float((0.5 * (tpr + tnr)).max())
