"""The pretraining model: encoder, linear head, EMA teacher, and the mmengine model."""
from mmtransfer.models.encoder import LinearHead, ResNetEncoder
from mmtransfer.models.mix_config import METHODS, MixConfig, MixConfigError
from mmtransfer.models.pretrainer import Classifier, MixPretrainer
from mmtransfer.models.teacher import EMATeacher

__all__ = ['METHODS', 'Classifier', 'EMATeacher', 'LinearHead', 'MixConfig', 'MixConfigError',
           'MixPretrainer', 'ResNetEncoder']
