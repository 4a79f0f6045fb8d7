"""Atomic writes: a failure or a kill mid-write never leaves a truncated file at the path."""
from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time

import mmengine.runner.runner as mmengine_runner
import pytest
import torch

from mmtransfer import compat
from mmtransfer.cli import run
from mmtransfer.fileio import save_atomic, save_safetensors_atomic
from tests.conftest import REPO


class _FailsWhenPickled:
    def __reduce__(self):
        raise RuntimeError('disk full')


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'ckpt.pth'
    save_atomic({'w': torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match='disk full'):
        save_atomic({'w': torch.zeros(3), 'bad': _FailsWhenPickled()}, path)
    assert torch.equal(torch.load(path, weights_only=True)['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['ckpt.pth']


WRITER = """
import sys, torch
from mmtransfer.fileio import save_atomic
big = torch.arange(2 ** 24, dtype=torch.float32)  # 64 MB: writes take a while
save_atomic({'step': 0, 'w': big}, sys.argv[1])
print('ready', flush=True)
step = 1
while True:
    save_atomic({'step': step, 'w': big + step}, sys.argv[1])
    step += 1
"""


def test_kill_9_during_writes_leaves_a_complete_file(tmp_path):
    path = tmp_path / 'ckpt.pth'
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'ready'
    time.sleep(1.5)                      # several writes in, likely mid-write now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt['w'], torch.arange(2 ** 24, dtype=torch.float32) + ckpt['step'])


def test_mmengine_checkpoints_are_written_atomically():
    assert mmengine_runner.save_checkpoint is compat._save_checkpoint_atomic


class _DiskFullAfter(io.BufferedWriter):
    """A file on a disk that fills up after ``LIMIT`` bytes."""
    LIMIT = 4096

    def write(self, data):
        if self.tell() + len(data) > self.LIMIT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


@pytest.mark.parametrize('save', [save_atomic, save_safetensors_atomic])
def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys,
                                                               save):
    path = tmp_path / 'iter_2.pth'
    save({'w': torch.ones(3)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, 'fdopen', lambda fd, mode: _DiskFullAfter(io.FileIO(fd, 'wb')))
    big = {'w': torch.zeros(100_000)}
    with pytest.raises(OSError, match='no space left on device') as caught:
        save(big, path)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert 'unexpected pos' not in str(caught.value)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['iter_2.pth']
    # what a command-line tool prints for it
    assert run(lambda argv: save(big, path), []) == 2
    assert capsys.readouterr().err == f'error: {path}: no space left on device (the disk is full)\n'
