# Faster R-CNN R50-FPN on COCO 2017: train2017 -> val2017, mmdet's 1x schedule (12 epochs) and
# CocoMetric bbox. Data under data/coco/{annotations,train2017,val2017} (inherited from the base).
# The backbone comes from a file exported by pretrain/export.py, loaded strictly.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmtransfer.detection', 'mmtransfer.engine'],
                      allow_failed_imports=False)
# Stop at the first non-finite loss (before it is checkpointed); save the random generators in
# checkpoints so that `--resume` after a crash ends with the weights of an uninterrupted run.
# mmdet's bases have no custom_hooks for Faster R-CNN.
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='RNGStateHook'),
]

# Backbone weights (torchvision ResNet names). Override on the command line with
# `tools/train.py CONFIG --backbone PATH` (or `--backbone none` for random init).
backbone_checkpoint = 'work_dirs/pretrain/dense_distill/backbone.pth'

model = dict(
    backbone=dict(
        init_cfg=dict(_delete_=True, type='StrictPretrained', checkpoint=backbone_checkpoint)))
