"""pretrain/train.py (its ``main``, through ``mmtransfer.cli.run``) with one fault at a chosen
iteration, for test_fault_tolerance.py. Run by ``dist_launch`` like the real script.

``MMT_FAULT`` (environment), on the first start only (not on torchrun's restarts):
- ``kill:K``: rank 1 kills itself with SIGKILL as iteration K starts (a lost rank);
- ``wait:K``: rank 0, at the end of iteration K, writes ``<work dir>/waiting`` and waits until
  a signal has reached it (so the test's signal lands at a known iteration).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmtransfer.cli import run  # noqa: E402
from mmtransfer.engine import FaultToleranceHook  # noqa: E402
from pretrain.train import main  # noqa: E402


def inject(kind: str, at: int) -> None:
    rank = int(os.environ.get('RANK', 0))
    before, after = FaultToleranceHook.before_train_iter, FaultToleranceHook.after_train_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if kind == 'kill' and rank == 1 and runner.iter + 1 == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return before(self, runner, batch_idx, data_batch)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if kind == 'wait' and rank == 0 and runner.iter + 1 == at:
            open(os.path.join(runner.work_dir, 'waiting'), 'w').close()
            deadline = time.monotonic() + 120
            while not self._received and time.monotonic() < deadline:
                time.sleep(0.02)
        return after(self, runner, batch_idx, data_batch, outputs)

    FaultToleranceHook.before_train_iter = before_train_iter
    FaultToleranceHook.after_train_iter = after_train_iter


if __name__ == '__main__':
    fault = os.environ.get('MMT_FAULT')
    if fault and os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') == '0':
        kind, at = fault.split(':')
        inject(kind, int(at))
    sys.exit(run(main))
