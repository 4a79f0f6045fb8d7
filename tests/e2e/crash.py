"""Running the CLIs as a user would, and killing them as a crash would."""
from __future__ import annotations

import os
import signal
import subprocess
import time

# One CPU thread: every step is deterministic, so resumed and uninterrupted runs compare exactly.
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
           PYTHONUNBUFFERED='1')


def run_ok(cmd, cwd) -> str:
    """Runs ``cmd`` to completion; it must succeed. Returns its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def run_and_kill_after(cmd, cwd, marker, timeout=600) -> int:
    """Starts ``cmd``; SIGKILLs it as soon as ``marker`` exists. Returns the return code."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def run_fails(cmd, cwd, *needles, env=None) -> str:
    """Runs ``cmd``; it must exit 2 with exactly one stderr line ``error: ...`` (no traceback)
    containing every needle. Returns that line."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True,
                          timeout=600)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-3000:]
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    assert 'Traceback' not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err
