_base_ = './base.py'
model = dict(mix=dict(method='dense'))
