# TinyImageNet-200, PreActResNet-18 at 64 px: lr 0.1 x0.1 after 600 and 900 epochs, 1,200 epochs
# (paper, appendix). Crop with 4 px padding and flip at 64 px (AlignMixup's tiny_imgnet/main.py).
# The dense grid is the native 8x8 (stride-1 stem, as AlignMixup's TinyImageNet network).
# Data: data/tiny-imagenet-200 in its release layout.
_base_ = './base.py'
data_root = 'data/tiny-imagenet-200'
model = dict(num_classes=200)
train_dataloader = dict(dataset=dict(_delete_=True, type='TinyImageNetDataset', root=data_root,
                                     split='train', size=64, num_views=1))
val_dataloader = dict(dataset=dict(_delete_=True, type='TinyImageNetDataset', root=data_root,
                                   split='val', size=64))
test_dataloader = val_dataloader
param_scheduler = dict(milestones=[600, 900])
train_cfg = dict(max_epochs=1200)
