# Distillation: the EMA teacher sees a second augmented view of each image (num_views=2)
# and is updated after every optimizer step by TeacherEMAHook.
_base_ = './base.py'
model = dict(mix=dict(method='dense_distill'))
train_dataloader = dict(dataset=dict(num_views=2))
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='RNGStateHook'),
    dict(type='TeacherEMAHook'),
    dict(type='DumpMetricsHook'),
    dict(type='ExportBackboneHook', which='student'),
]
