"""mmengine glue of pretraining: hooks and the accuracy metric (registered on import)."""
from mmtransfer.engine.fault_tolerance import FaultToleranceHook
from mmtransfer.engine.hooks import (
                                     DumpMetricsHook,
                                     ExportBackboneHook,
                                     NonFiniteLossHook,
                                     RNGStateHook,
                                     TeacherEMAHook,
)
from mmtransfer.engine.metrics import Accuracy

__all__ = ['Accuracy', 'DumpMetricsHook', 'ExportBackboneHook', 'FaultToleranceHook',
           'NonFiniteLossHook', 'RNGStateHook', 'TeacherEMAHook']
