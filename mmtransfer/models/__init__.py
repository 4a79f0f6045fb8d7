"""The pretraining model: encoder, linear head, EMA teacher, and the mmengine model."""
from mmtransfer.models.encoder import LinearHead, ResNetEncoder
from mmtransfer.models.factory import ARCHS, build_encoder
from mmtransfer.models.mix_config import METHODS, MixConfig, MixConfigError
from mmtransfer.models.preact_resnet import PreActResNetEncoder
from mmtransfer.models.pretrainer import Classifier, MixPretrainer
from mmtransfer.models.teacher import EMATeacher
from mmtransfer.models.wide_resnet import WideResNetEncoder

__all__ = ['ARCHS', 'METHODS', 'Classifier', 'EMATeacher', 'LinearHead', 'MixConfig',
           'MixConfigError', 'MixPretrainer', 'PreActResNetEncoder', 'ResNetEncoder',
           'WideResNetEncoder', 'build_encoder']
