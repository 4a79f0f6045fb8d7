# CIFAR-100, WRN16-8 (Table 1 "W"). Its native embedding grid is 8x8 at 32 px (total stride 4);
# dense MultiMix pools it to the paper's 4x4 CIFAR grid (dense_pool=2).
_base_ = './base.py'
model = dict(arch='wrn16_8', mix=dict(dense_pool=2))
