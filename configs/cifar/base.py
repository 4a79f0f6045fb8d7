# The paper's CIFAR recipe (MultiMix, NeurIPS 2023, sec. 4 and appendix; ../shared/paper-figures.md):
# PreActResNet-18 on 32 px, SGD with momentum 0.9 and weight decay 1e-4, m = 128, lr 0.1 x0.1
# every 500 epochs, 2,000 epochs, one GPU. n = 1000, alpha ~ U[0.5, 2], p = 0.5, gamma = 0.5 are
# configs/pretrain/base.py's. The whole split sits on the device as uint8; DeviceAugmentPreprocessor
# crops (4 px zero padding), flips and normalises each batch there (AlignMixup's augmentation and
# statistics), so no loader worker touches an image.
#   python pretrain/train.py --method dense_distill --config configs/cifar/cifar100_preactresnet18.py --seed 3
_base_ = '../pretrain/base.py'
data_root = 'data/cifar100'
batch_size = 128
model = dict(
    arch='preactresnet18', num_classes=100,
    data_preprocessor=dict(_delete_=True, type='DeviceAugmentPreprocessor', padding=4, hflip=0.5,
                           channels_last=None))
# Items are indices only (the images stay on the device): no loader workers.
train_dataloader = dict(
    num_workers=0, persistent_workers=False, pin_memory=False, batch_size=batch_size,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_delete_=True, type='CifarDataset', root=data_root, split='train',
                 num_views=1))
val_dataloader = dict(
    num_workers=0, persistent_workers=False, pin_memory=False, batch_size=500, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, type='CifarDataset', root=data_root, split='test'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[500, 1000, 1500],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=2000, val_interval=10)
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=10, max_keep_ckpts=2, save_last=True))
