"""Detection transfer: strict backbone initialisation and helpers for ``tools/``.

Importing this package registers the ``StrictPretrained`` weight initializer, so configs say
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

__all__ = [
    'BackboneLoadError', 'StrictPretrainedInit', 'check_fits',
    'load_backbone_strict', 'read_backbone_state_dict',
]
