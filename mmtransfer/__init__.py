"""mmtransfer: MultiMix pretraining and its transfer to object detection.

Importing the package applies the stack's version workarounds (:mod:`mmtransfer.compat`).
"""
from mmtransfer import compat

compat.apply()

__version__ = '0.1.0'
