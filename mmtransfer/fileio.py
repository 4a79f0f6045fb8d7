"""Atomic writes: a temporary file in the destination folder, fsync, then ``os.replace``.

A process killed mid-write leaves the previous file intact and never a truncated one.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO

import torch


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path``, atomically."""
    write_atomic(path, lambda f: f.write(text.encode('utf-8')))
