# Demo: ../faster_rcnn_coco.py on the synthetic COCO-style scenes of mmtransfer/data/demo.py
# (the same scenes as the VOC demo: 192x160 px, 1-6 shapes of 14-72 px, 10 classes), sized for
# a 2-core CPU. Only what the small data and the CPU budget need differs from the parent config;
# the model and schedule changes are those of demo/faster_rcnn_voc.py (see the reasons there).
_base_ = '../faster_rcnn_coco.py'

# Training length in iterations (batch 2): the one knob that trades CPU time for AP.
max_iters = 270

data_root = 'data/demo/coco/'
# Must equal mmtransfer.data.demo.DEMO_CLASSES (tests/detection/test_detection_configs.py).
classes = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon', 'diamond',
           'crescent', 'heart')
metainfo = dict(classes=classes)
# The demo pretrains a half-width torchvision resnet18 (configs/demo/pretrain.py: width=32).
backbone_checkpoint = 'work_dirs/demo/pretrain/baseline/backbone.pth'

model = dict(
    backbone=dict(depth=18, base_channels=32, stem_channels=32,
                  init_cfg=dict(checkpoint=backbone_checkpoint)),
    # CPU time: demo-width heads (64 channels, 256-d RoI FC; mmdet: 256 and 1024).
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    # Anchors 16-256 px for 14-72 px objects (mmdet's smallest, 32 px, misses 14 px boxes).
    rpn_head=dict(in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes))),
    # Scenes hold <= 6 objects: 128 sampled RoIs, 300 / 100 proposals (mmdet: 512, 1000 / 1000).
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# Native scene size, no multi-scale.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(192, 160), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(192, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    num_workers=0, persistent_workers=False,  # 2 cores: loading in-process is cheapest
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based schedule
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset', data_root=data_root, metainfo=metainfo,
        ann_file='annotations/instances_val2017.json', data_prefix=dict(img='val2017/'),
        test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(
    type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox', format_only=False)
# CPU time: no validation during training; tools/test.py evaluates the final checkpoint once.
val_dataloader = None
val_cfg = None
val_evaluator = None

# Batch 2 on one CPU (mmdet: 8 GPUs x 2). mmdet's COCO lr 0.02 diverges (NaN) at batch 2 within
# 100 iterations; the VOC demo's 0.01 with gradient clipping is stable.
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))

# Short iteration-based schedule: linear warm-up, one LR step at 3/4.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[max_iters * 3 // 4], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=20)
