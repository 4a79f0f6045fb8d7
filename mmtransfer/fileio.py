"""Atomic writes: a temporary file in the destination folder, fsync, ``os.replace``, then an
fsync of the folder so the rename itself survives a power loss.

A process killed mid-write leaves the previous file intact and never a truncated one; a write
that fails for want of space (``torch.save`` reports it as ``unexpected pos``) removes the
temporary file and raises ``OSError(ENOSPC)`` naming the file. The file ends with the mode a
plain ``open(path, 'wb')`` gives (``0o666`` less the umask), not the ``0o600`` of ``mkstemp``,
so teammates on a shared disk can read backbones and results.
"""
from __future__ import annotations

import errno
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
            recorder = _WriteErrors(f)
            try:
                write(recorder)
                f.flush()
                os.fchmod(f.fileno(), 0o666 & ~_umask())
                os.fsync(f.fileno())
            except Exception as err:
                if _no_space(err) or _no_space(recorder.error):
                    raise OSError(errno.ENOSPC, 'no space left on device (the disk is full)',
                                  path) from err
                raise
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


class _WriteErrors:
    """A file that remembers the OSError of a failed ``write``: ``torch.save`` swallows it
    and raises ``RuntimeError: ... unexpected pos`` instead."""

    def __init__(self, f: IO[bytes]):
        self._f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str):
        return getattr(self._f, name)


def _no_space(err: BaseException | None) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    write_atomic(path, lambda f: torch.save(obj, f))


def save_safetensors_atomic(tensors: dict, path: str | os.PathLike) -> None:
    """A flat ``{name: tensor}`` dict as ``.safetensors`` (contiguous CPU copies), atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path``, atomically."""
    write_atomic(path, lambda f: f.write(text.encode('utf-8')))


def check_output_path(path: str | os.PathLike, directory: bool = False) -> None:
    """Raise, before any work, the OSError that writing ``path`` would raise at the end: a
    directory where a file goes, a file where a directory goes (``directory=True``), or a file
    among its parents."""
    path = os.fspath(path)
    if not path:
        raise ValueError('empty output path')
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, 'is a file, not a directory', path)
        if not directory and os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(errno.ENOTDIR, f'{parent} is a file, not a directory', path)
