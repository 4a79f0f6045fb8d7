# CIFAR-100, PreActResNet-18 (the paper's Table 1 "R-18" column). Data: data/cifar100/cifar-100-python.
_base_ = './base.py'
