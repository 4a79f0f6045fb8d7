"""Evaluation of pretrained classifiers beyond top-1, as the paper reports it.

Pure torch functions, in the style of :mod:`mmtransfer.mixing`:

* :mod:`.robustness` - FGSM and PGD in pixel space (Table 3 of the paper);
* :mod:`.calibration` - expected calibration error and reliability bins;
* :mod:`.ood` - out-of-distribution detection with the maximum softmax probability: AUROC,
  AUPR and detection accuracy (appendix A.3).
"""
from .calibration import expected_calibration_error, reliability_bins
from .ood import aupr, auroc, detection_accuracy, max_softmax_probability
from .robustness import LITERATURE_PROTOCOL, fgsm, pgd

__all__ = ['LITERATURE_PROTOCOL', 'fgsm', 'pgd', 'expected_calibration_error', 'reliability_bins',
           'max_softmax_probability', 'auroc', 'aupr', 'detection_accuracy']
