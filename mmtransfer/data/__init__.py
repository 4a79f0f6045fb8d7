"""Data for pretraining: ImageFolder datasets, one- and two-view transforms, the demo data."""
from mmtransfer.data.imagefolder import ImageFolderDataset, MultiViewDataPreprocessor
from mmtransfer.data.transforms import build_transform

__all__ = ['ImageFolderDataset', 'MultiViewDataPreprocessor', 'build_transform']
