"""Top-k classification accuracy as an mmengine metric (``accuracy/top1``, ``accuracy/top5``)."""
from __future__ import annotations

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Percentage of images whose label is among the k highest logits.

    Consumes :class:`~mmtransfer.models.MixPretrainer`'s ``predict`` output: one
    ``dict(pred=logits[c], gt=label)`` per image.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: tuple[int, ...] = (1, 5), **kwargs):
        super().__init__(**kwargs)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            k = min(max(self.topk), sample['pred'].numel())
            top = sample['pred'].topk(k).indices.cpu()
            self.results.append([bool((top[:t] == int(sample['gt'])).any()) for t in self.topk])

    def compute_metrics(self, results: list) -> dict:
        hits = torch.tensor(results, dtype=torch.float64).mean(0) * 100
        return {f'top{t}': float(h) for t, h in zip(self.topk, hits, strict=False)}
