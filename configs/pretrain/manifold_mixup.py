_base_ = './base.py'
model = dict(mix=dict(method='manifold_mixup'))
