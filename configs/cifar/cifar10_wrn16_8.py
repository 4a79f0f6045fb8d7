# CIFAR-10, WRN16-8; dense MultiMix on the 4x4 grid pooled from the native 8x8 (dense_pool=2).
_base_ = './cifar10_preactresnet18.py'
model = dict(arch='wrn16_8', mix=dict(dense_pool=2))
