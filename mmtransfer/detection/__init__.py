"""Detection transfer: strict backbone initialisation and helpers for ``tools/``.

Importing this package registers the ``StrictPretrained`` weight initializer, the
``NamedVOCMetric`` (VOC mAP with the dataset's own class names) and a ``LoadImageFromFile`` that
names an image it cannot decode (:mod:`mmtransfer.detection.images`), so configs say
``custom_imports = dict(imports=['mmtransfer.detection', 'mmtransfer.engine'], ...)``.
"""
import mmtransfer  # noqa: F401  (applies mmtransfer.compat before mmengine loads anything)
from mmtransfer.detection.backbone_init import (
    BackboneLoadError,
    StrictPretrainedInit,
    check_fits,
    load_backbone_strict,
    read_backbone_state_dict,
)
from mmtransfer.detection.images import ImageError, LoadImageFromFile
from mmtransfer.detection.metrics import NamedVOCMetric

__all__ = [
    'BackboneLoadError', 'ImageError', 'LoadImageFromFile', 'StrictPretrainedInit', 'check_fits',
    'load_backbone_strict', 'read_backbone_state_dict', 'NamedVOCMetric',
]
