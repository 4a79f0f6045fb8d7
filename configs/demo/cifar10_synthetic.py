# `make cifar-demo`: configs/cifar/cifar10_preactresnet18.py (its SGD, pickle layout and
# on-device augmentation) on the synthetic CIFAR-10 of `tools/make_demo_data.py --layout
# cifar10` (4,000 train / 300 test images of 10 classes, 32x32), about a minute a method on a
# 2-core CPU. What differs from the paper's recipe, and why:
# - PreActResNet-18 at an eighth of the width (width=8: 8-16-32-64 channels, 1/64 of the
#   FLOPs), to fit every method in minutes; the 4x4 dense grid at 32 px is unchanged.
# - 8 epochs (248 steps), lr x0.1 after 4 and 6 (the paper: 2,000, x0.1 every 500).
# - n = 256 mixed embeddings (1000).
# - The EMA teacher averages over ~100 steps (momentum 0.01), and mixing starts halfway
#   (mix.start_iter), for the reasons configs/demo/pretrain.py gives.
_base_ = '../cifar/cifar10_preactresnet18.py'
data_root = 'data/demo/cifar10'
# 8 epochs of 4000 // 128 = 31 steps: 248 steps; mixing from step 124.
model = dict(width=8, mix=dict(n=256, ema_momentum=0.01, start_iter=124))
train_dataloader = dict(dataset=dict(root=data_root))
val_dataloader = dict(dataset=dict(root=data_root))
test_dataloader = val_dataloader
param_scheduler = dict(milestones=[4, 6])
train_cfg = dict(max_epochs=8, val_interval=8)
default_hooks = dict(logger=dict(interval=31),
                     checkpoint=dict(interval=8, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
