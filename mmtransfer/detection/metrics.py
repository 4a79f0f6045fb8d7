"""Detection metrics as ``tools/test.py`` prints and saves them (read by ``tools/summarize.py``).

``metrics.json`` is a flat ``{mmdet metric name: float}`` dict, e.g. ``"pascal_voc/mAP"`` or
``"coco/bbox_mAP_50"``; mmdet's non-numeric entries (``coco/bbox_mAP_copypaste``) are left out.

When a detector makes no detection above its score threshold, mmdet's ``CocoMetric`` logs an
error and returns no metrics (pycocotools cannot load an empty result list);
:func:`coco_metrics_without_detections` then scores the empty result set with pycocotools.
"""
from __future__ import annotations

import json
from numbers import Real

from mmtransfer.fileio import write_text_atomic

METRICS_FILE = 'metrics.json'
#: CocoMetric's headline items, in the order of ``COCOeval.stats``.
COCO_ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')

#: (short name, mmdet key) in the order a paper's table reports them.
SUMMARY_KEYS = (
    ('mAP', 'pascal_voc/mAP'),
    ('AP', 'coco/bbox_mAP'),
    ('AP50', 'coco/bbox_mAP_50'),
    ('AP75', 'coco/bbox_mAP_75'),
    ('APs', 'coco/bbox_mAP_s'),
    ('APm', 'coco/bbox_mAP_m'),
    ('APl', 'coco/bbox_mAP_l'),
)


def numeric_metrics(metrics: dict) -> dict[str, float]:
    """The numeric entries of an mmengine metrics dict, as plain floats (bool excluded)."""
    return {str(k): float(v) for k, v in metrics.items()
            if isinstance(v, Real) and not isinstance(v, bool)}


def coco_metrics_without_detections(coco_metric) -> dict[str, float]:
    """What mmdet's ``CocoMetric`` would report for an empty result set, after its evaluation.

    Runs ``COCOeval`` on the metric's ground truth, category and image ids with no detections:
    AP is 0 wherever there is ground truth and -1 (pycocotools' "no ground truth") elsewhere.
    """
    from mmdet.datasets.api_wrappers import COCO, COCOeval

    gt = coco_metric._coco_api
    no_detections = COCO()
    no_detections.dataset = dict(images=gt.dataset['images'],
                                 categories=gt.dataset['categories'], annotations=[])
    no_detections.createIndex()
    coco_eval = COCOeval(gt, no_detections, 'bbox')
    coco_eval.params.catIds = coco_metric.cat_ids
    coco_eval.params.imgIds = coco_metric.img_ids
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    prefix = coco_metric.prefix
    return {f'{prefix}/bbox_{item}': float(round(coco_eval.stats[i], 3))
            for i, item in enumerate(COCO_ITEMS)}


def format_metrics(metrics: dict[str, float]) -> str:
    """A short block: one ``name  value`` line per headline metric present (others omitted)."""
    lines = [f'  {short:<5} {metrics[key]:.4f}   ({key})'
             for short, key in SUMMARY_KEYS if key in metrics]
    if not lines:  # an unfamiliar metric: show everything rather than nothing
        lines = [f'  {key}: {value:.4f}' for key, value in sorted(metrics.items())]
    return '\n'.join(['Results:', *lines])


def write_metrics_json(path: str, metrics: dict[str, float]) -> None:
    """Write ``metrics`` to ``path`` atomically (temp file in the same folder, then replace)."""
    write_text_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + '\n')


def _register_named_voc_metric():
    from mmdet.evaluation import VOCMetric
    from mmdet.registry import METRICS

    @METRICS.register_module(force=True)
    class NamedVOCMetric(VOCMetric):
        """mmdet's ``VOCMetric`` whose per-class table names the dataset's own classes.

        ``VOCDataset`` marks any data under a ``VOC2007`` folder as ``dataset_type='VOC2007'``
        and ``VOCMetric`` then labels the rows with Pascal VOC's 20 names, whatever the classes
        are (the demo's shapes, say). The numbers are the same; only the names change.
        """

        def compute_metrics(self, results: list) -> dict:
            meta = self.dataset_meta
            if not meta or 'dataset_type' not in meta:
                return super().compute_metrics(results)
            self._dataset_meta = {k: v for k, v in meta.items() if k != 'dataset_type'}
            try:
                return super().compute_metrics(results)
            finally:
                self._dataset_meta = meta

    return NamedVOCMetric


NamedVOCMetric = _register_named_voc_metric()
