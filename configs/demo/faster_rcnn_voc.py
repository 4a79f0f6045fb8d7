# Demo: ../faster_rcnn_voc.py on the synthetic VOC-style scenes of mmtransfer/data/demo.py
# (192x160 px, 1-6 shapes of 14-72 px, 10 classes), sized for a 2-core CPU. Only what the small
# data and the CPU budget need differs from the parent config.
_base_ = '../faster_rcnn_voc.py'

# Training length in iterations (batch 2): the one knob that trades CPU time for mAP.
max_iters = 270

data_root = 'data/demo/VOCdevkit/'
# Must equal mmtransfer.data.demo.DEMO_CLASSES (tests/detection/test_detection_configs.py).
classes = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon', 'diamond',
           'crescent', 'heart')
metainfo = dict(classes=classes)
# The demo pretrains a half-width torchvision resnet18 (configs/demo/pretrain.py: width=32).
backbone_checkpoint = 'work_dirs/demo/pretrain/baseline/backbone.pth'

model = dict(
    backbone=dict(depth=18, base_channels=32, stem_channels=32,
                  init_cfg=dict(checkpoint=backbone_checkpoint)),
    # CPU time: demo-width heads, 64 channels and a 256-d RoI FC (mmdet: 256 and 1024). At
    # mmdet's width the FPN/RPN convs and the 12544x1024 FC cost ~20x the ResNet-18 itself:
    # ~3 s per step on 2 CPU cores instead of ~0.16 s. The backbone is what is compared.
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(
        in_channels=64, feat_channels=64,
        # Objects are 14-72 px: mmdet's smallest anchor (scale 8 x stride 4 = 32 px) has
        # IoU < 0.3 with a 14 px box, so RPN would never see a positive for it: 16-256 px.
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes))),
    # Scenes hold <= 6 objects: 128 sampled RoIs and 300 / 100 proposals (mmdet: 512 and
    # 1000 / 1000) lose little and keep the RoI head cheap.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# Native scene size, no multi-scale. No bbox_min_size: mmdet's 32 px would ignore most shapes.
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
voc_trainval = dict(
    type='VOCDataset', data_root=data_root, metainfo=metainfo,
    filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline)
train_dataloader = dict(
    num_workers=0, persistent_workers=False,  # 2 cores: loading in-process is cheapest
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based schedule
    dataset=dict(
        times=1,
        dataset=dict(datasets=[
            dict(voc_trainval, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2007/')),
            dict(voc_trainval, ann_file='VOC2012/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2012/')),
        ])))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VOCDataset', data_root=data_root, metainfo=metainfo,
        ann_file='VOC2007/ImageSets/Main/test.txt', data_prefix=dict(sub_data_root='VOC2007/'),
        test_mode=True, pipeline=test_pipeline))
# VOC 11-point mAP as the parent's, with the per-class table naming the demo's shapes (mmdet's
# VOCMetric names Pascal VOC's classes for any data under a VOC2007 folder).
test_evaluator = dict(type='NamedVOCMetric', metric='mAP', eval_mode='11points')
# CPU time: no validation during training; tools/test.py evaluates the final checkpoint once.
val_dataloader = None
val_cfg = None
val_evaluator = None

# Batch 2 on one CPU (mmdet: 8 GPUs x 2): keep mmdet's VOC lr 0.01 for the short schedule,
# with gradient clipping against the spikes of a batch of 2.
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))

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
