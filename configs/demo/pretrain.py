# Demo settings for `pretrain/train.py --demo`: merged over configs/pretrain/<method>.py, they
# change only what the small data and a 2-core CPU need. The embedded demo data (10 classes of
# synthetic shapes, 64x64, 100 train / 20 val images per class) is made by
# tools/make_demo_data.py.
# - resnet18 instead of resnet50; m = 32 images per batch, n = 256 mixed embeddings.
# - AdamW (lr 2e-3, weight decay 0.05) with a short warm-up and a cosine schedule over 17 epochs
#   (544 steps): a from-scratch network gets only a few hundred steps on a CPU, and SGD at the
#   paper's lr did not leave chance level within them on this data (measured; see README).
data_root = 'data/demo/cls'
image_size = 64
max_epochs = 17
model = dict(arch='resnet18', num_classes=10, mix=dict(n=256))
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=False, pin_memory=False,
    dataset=dict(root='data/demo/cls/train', size=64, transform=dict(scale=(0.35, 1.0))))
val_dataloader = dict(
    batch_size=100, num_workers=1, persistent_workers=False, pin_memory=False,
    dataset=dict(root='data/demo/cls/val', size=64, transform=dict(resize=64)))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05))
auto_scale_lr = dict(enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, eta_min=0.0),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=5, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
