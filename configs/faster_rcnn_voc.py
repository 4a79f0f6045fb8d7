# Faster R-CNN R50-FPN on PASCAL VOC: VOC07+12 trainval -> VOC07 test, mmdet's VOC0712 schedule
# (4 epochs x RepeatDataset(times=3)) and VOCMetric with 11-point mAP. Data under
# data/VOCdevkit/{VOC2007,VOC2012} (mmdet's layout, inherited from the base).
# The backbone comes from a file exported by pretrain/export.py, loaded strictly.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

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
