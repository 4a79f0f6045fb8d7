# CIFAR-10, PreActResNet-18. Data: data/cifar10/cifar-10-batches-py.
_base_ = './base.py'
data_root = 'data/cifar10'
model = dict(num_classes=10)
train_dataloader = dict(dataset=dict(root=data_root))
val_dataloader = dict(dataset=dict(root=data_root))
test_dataloader = val_dataloader
