# ResNet-50 on ImageNet, the paper's recipe (MultiMix, NeurIPS 2023, sec. 4 / appendix):
# SGD, momentum 0.9, weight decay 1e-4, initial lr 0.1 as the appendix states it (its run: 32 GPUs
# x m = 128), 300 epochs, lr x0.1 at epochs 100 and 200, m = 128 and n = 1000 per device.
# The lr is NOT scaled with the number of GPUs by default; `--auto-scale-lr` (ours, not the
# paper's) scales it linearly from the paper's global batch of 32 x 128 = 4096 images.
# docs/fidelity.md lists every setting. One config per method inherits this file
# and states only its method.
custom_imports = dict(
    imports=['mmtransfer.data', 'mmtransfer.models', 'mmtransfer.engine'],
    allow_failed_imports=False)
default_scope = None

data_root = 'data/imagenet'        # <data_root>/train/<class>/*.JPEG, <data_root>/val/<class>/*
image_size = 224
batch_size = 128                   # m: images per device (the paper's per-GPU batch)
num_workers = 8

model = dict(
    type='MixPretrainer',
    arch='resnet50',
    num_classes=1000,
    last_stride=2,                 # 1: stride-1 last block, a 2x finer dense grid (ablation)
    channels_last=None,            # None: on with a GPU (pretrain/train.py), off on CPU
    data_preprocessor=dict(type='MultiViewDataPreprocessor', channels_last=None),
    # Every option of mmtransfer.models.MixConfig; the values are the paper's defaults.
    mix=dict(
        method='baseline',
        n=1000,                    # mixed embeddings per device and mini-batch
        alpha=(0.5, 2.0),          # Dirichlet concentration, alpha_k ~ U[0.5, 2] per column
        prob=0.5,                  # MultiMix with prob 0.5, input mixup otherwise
        block=4,                   # interpolate the last block's embedding
        pair_alpha=1.0,            # Beta(1, 1) for mixup / CutMix / manifold mixup
        manifold_blocks=(0, 1, 2),
        attention_u='gap',         # dense: u = GAP of the embedding
        attention_h='relu_l1',     # dense: h = ReLU then l1 normalisation
        dense_resolution=None,     # dense: native grid (7x7 at 224 px) ...
        dense_pool=None,           # ... or k x k average pooling, stride k: 7 -> 4 (k=2), 2 (k=4)
        detach_attention=False,    # dense: gradient flows through the attention (ours)
        teacher_attention='own',   # dense distillation: the teacher's attention on its own view
        pairwise_dense_loss=None,  # None: pooled loss on the mixup half of dense methods
        gamma=0.5,                 # distillation: gamma * H(Y~, P~) + (1 - gamma) * H(P~', P~)
        ema_momentum=0.001,        # teacher <- 0.999 teacher + 0.001 student (not in the paper)
    ))

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,                # every step mixes m examples (and the ranks stay in step)
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', root=f'{data_root}/train', train=True,
                 size=image_size, num_views=1))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', root=f'{data_root}/val', train=False,
                 size=image_size))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
# Off: lr 0.1 whatever the GPU count (the paper). On (--auto-scale-lr): 0.1 x global batch / 4096.
auto_scale_lr = dict(enable=False, base_batch_size=4096)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[100, 200], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='RNGStateHook'),
    dict(type='DumpMetricsHook'),
    dict(type='ExportBackboneHook', which='student'),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
# device_ids=None lets DDP use the module's device: the GPU of the rank, or the CPU (gloo).
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
                         find_unused_parameters=False)
sync_bn = None                     # 'torch' converts BN to SyncBN under DDP
log_processor = dict(by_epoch=True, window_size=20)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_level = 'INFO'
# diff_rank_seed: each rank draws its own Lambda, coin, permutations and augmentation, so the
# n mixtures of each GPU differ (the sampler's shuffling stays shared across ranks).
randomness = dict(seed=0, deterministic=False, diff_rank_seed=True)
load_from = None
resume = False
