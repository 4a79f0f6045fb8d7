"""Data for pretraining: ImageFolder datasets, one- and two-view transforms, the demo data,
CIFAR-10/100 and TinyImageNet-200 held in memory with batched on-device augmentation."""
from mmtransfer.data.bank import BankDataset
from mmtransfer.data.cifar import CifarDataset
from mmtransfer.data.device_augment import DeviceAugmentPreprocessor
from mmtransfer.data.imagefolder import ImageFolderDataset, MultiViewDataPreprocessor
from mmtransfer.data.tinyimagenet import TinyImageNetDataset
from mmtransfer.data.transforms import build_transform

__all__ = ['BankDataset', 'CifarDataset', 'DeviceAugmentPreprocessor', 'ImageFolderDataset',
           'MultiViewDataPreprocessor', 'TinyImageNetDataset', 'build_transform']
