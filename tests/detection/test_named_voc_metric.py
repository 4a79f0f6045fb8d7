"""NamedVOCMetric: mmdet's VOC mAP, with the per-class table naming the dataset's classes."""
from __future__ import annotations

import numpy as np
import pytest
from mmdet.evaluation import VOCMetric
from mmdet.evaluation.metrics import voc_metric

from mmtransfer.detection import NamedVOCMetric


def _results():
    ann = dict(bboxes=np.array([[0, 0, 10, 10], [20, 20, 40, 40]], dtype=np.float32),
               labels=np.array([0, 1]), bboxes_ignore=np.zeros((0, 4), np.float32),
               labels_ignore=np.zeros((0,), np.int64))
    dets = [np.array([[0, 0, 10, 10, 0.9]], np.float32),          # class 0: found
            np.array([[60, 60, 70, 70, 0.8]], np.float32)]        # class 1: missed
    return [(ann, dets)]


@pytest.mark.parametrize('cls, names', [(VOCMetric, 'voc'), (NamedVOCMetric, ('circle', 'ring'))])
def test_same_map_with_the_datasets_class_names(monkeypatch, cls, names):
    seen = []
    original = voc_metric.eval_map

    def spy(*args, **kwargs):
        seen.append(kwargs['dataset'])
        return original(*args, **kwargs)

    monkeypatch.setattr(voc_metric, 'eval_map', spy)
    metric = cls(metric='mAP', eval_mode='11points')
    metric.dataset_meta = dict(classes=('circle', 'ring'), dataset_type='VOC2007')
    out = metric.compute_metrics(_results())
    assert out['mAP'] == pytest.approx(0.5)                        # (1 + 0) / 2
    assert seen == [names]
    assert metric.dataset_meta['dataset_type'] == 'VOC2007'        # restored
