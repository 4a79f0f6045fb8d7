# Demo settings for `pretrain/train.py --demo`: merged over configs/pretrain/<method>.py, they
# change only what the small data and a 2-core CPU need. The embedded demo data (10 classes of
# synthetic shapes on cluttered backgrounds, 64x64, 800 train / 50 val images per class) is made
# by tools/make_demo_data.py. What each change bought was measured on a 2-core CPU (docs/demo.md,
# "What the demo settings change"):
# - ResNet-18 at half width (width=32: 32-64-128-256 channels, a quarter of the FLOPs; the key
#   names stay torchvision's and the demo detectors build mmdet's ResNet the same way).
# - m = 64 images per batch, n = 256 mixed embeddings.
# - AdamW (lr 3e-3, weight decay 0.05), a linear warm-up over the first 15 % of the steps and a
#   cosine decay, 8 epochs (1,000 steps): a from-scratch network gets about a thousand steps on a
#   CPU, and SGD at the paper's lr did not leave chance level within a few hundred on this data.
#   A 50-step warm-up suited baseline but sent dense_distill to a uniform prediction (loss ln 10,
#   top-1 15 %) from which it did not recover.
# - The EMA teacher of the distillation methods averages over ~100 steps (momentum 0.01) instead
#   of ~1,000 (0.001): with 1,000 steps in all, the paper's teacher would still be close to its
#   random initialisation for most of the run.
# - Mixing starts at step 500 (mix.start_iter): the mixing methods train their first half
#   unmixed, then with their mixing (dense_distill: MultiMix on half of the batches, as in the
#   paper). Mixing from step 0, dense_distill stayed at 19-26 % demo top-1 where baseline
#   reached 65-74 %; the MultiMix batches pull a network that has not yet left chance back to a
#   uniform prediction (docs/findings.md, "Where it is lost"). baseline does not mix and is unchanged.
data_root = 'data/demo/cls'
image_size = 64
max_epochs = 8
batch_size = 64  # m
steps_per_epoch = 10 * 800 // batch_size  # 10 classes of 800 train images
warmup_epochs = max_epochs * 0.15  # 150 of the 1,000 steps (mmengine counts the loader's steps)
model = dict(arch='resnet18', width=32, num_classes=10,
             mix=dict(n=256, ema_momentum=0.01, start_iter=steps_per_epoch * max_epochs // 2))
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=False, pin_memory=False,
    dataset=dict(root='data/demo/cls/train', size=64, transform=dict(scale=(0.6, 1.0))))
val_dataloader = dict(
    batch_size=100, num_workers=1, persistent_workers=False, pin_memory=False,
    dataset=dict(root='data/demo/cls/val', size=64, transform=dict(resize=64)))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=3e-3, weight_decay=0.05))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.04, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_epochs, end=max_epochs,
         T_max=max_epochs - warmup_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
