"""mmcv's ``LoadImageFromFile`` with a one-line error naming an image it cannot decode.

mmcv asserts that the decoded image is not None, which ends a run with a traceback of about 50
lines. Registered under the same name in mmdet's transform registry (which mmdet configs use),
so every config that says ``dict(type='LoadImageFromFile')`` gets it unchanged.
"""
from __future__ import annotations

from mmcv.transforms import LoadImageFromFile as _MMCVLoadImageFromFile
from mmdet.registry import TRANSFORMS


class ImageError(ValueError):
    """An image file that exists but cannot be decoded (corrupt, truncated, not an image)."""


@TRANSFORMS.register_module(name='LoadImageFromFile', force=True)
class LoadImageFromFile(_MMCVLoadImageFromFile):
    """mmcv's transform; an image that cannot be decoded raises :class:`ImageError`."""

    def transform(self, results: dict) -> dict | None:
        try:
            return super().transform(results)
        except AssertionError:  # mmcv: `assert img is not None`
            raise ImageError(f'{results["img_path"]}: corrupt or truncated image (it does not '
                             'decode)') from None
