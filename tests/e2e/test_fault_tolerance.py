"""The faults of long multi-process runs, on CPU with 2 gloo processes under ``dist_launch``
(tools/dist_common.sh, what tools/dist_pretrain.sh runs): a rank lost mid-epoch is restarted
and resumes by itself; SIGUSR1 / SIGTERM write a checkpoint at the end of the iteration; both
end with the weights of a run never interrupted, tensor by tensor. A checkpoint of 2 processes
resumes on 1 and one of 1 on 2, iteration count, schedule and lr continuing.

The runs: 3 classes of 6 images, 3 per batch and process, a width-8 ResNet-18, 2 epochs (3
iterations per epoch on 2 processes, 6 on 1). ``auto_scale_lr`` with a base batch of 6, so
that the lr is the config's 0.01 on 2 processes and follows the global batch on another count.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO
from tests.e2e.crash import ENV
from tests.e2e.test_resume import tiny_cls  # noqa: F401  (a fixture)

WORKER = os.path.join(REPO, 'tests', 'e2e', 'fault_worker.py')
LAUNCH = 'source tools/dist_common.sh; dist_launch "$0" 2 "$@"'


def _args(data, work_dir, *extra, epochs=2):
    return ['--method', 'multimix', '--data-root', str(data), '--arch', 'resnet18',
            '--work-dir', str(work_dir), *extra, '--cfg-options', 'model.width=8',
            'model.num_classes=3', 'model.mix.n=8', 'train_dataloader.batch_size=3',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'optim_wrapper.optimizer.lr=0.01', 'auto_scale_lr.enable=True',
            'auto_scale_lr.base_batch_size=6', 'default_hooks.checkpoint.max_keep_ckpts=-1',
            *([f'train_cfg.max_epochs={epochs}'] if epochs else [])]


@pytest.fixture(scope='module')
def data(tiny_cls):  # noqa: F811
    return tiny_cls


def _launch(port, args, fault=None, max_restarts=None):
    """``dist_launch`` of 2 ranks in a session of its own (its process group is what slurm
    signals: this script, the filter, torchrun)."""
    env = dict(ENV, PYTHON=sys.executable, PORT=str(port))
    env.update({'MMT_FAULT': fault} if fault else {})
    env.update({'MAX_RESTARTS': str(max_restarts)} if max_restarts is not None else {})
    return subprocess.Popen(['bash', '-c', LAUNCH, WORKER, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc, code=0) -> list[str]:
    """Waits for ``proc``; its exit status must be ``code``. Returns its stderr lines."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-3000:]
    assert 'Traceback' not in err and not any(line.startswith('error:')
                                              for line in err.splitlines()), err[-3000:]
    return err.splitlines()


def _assert_same_weights(path, expected):
    resumed = load_checkpoint(path)['state_dict']
    assert set(resumed) == set(expected)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory):
    """An uninterrupted run of 2 processes: its final weights."""
    work = tmp_path_factory.mktemp('uninterrupted')
    _finish(_launch(29561, _args(data, work)))
    return load_checkpoint(work / 'epoch_2.pth')['state_dict']


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_is_restarted_and_ends_with_the_uninterrupted_weights(
        data, reference, tmp_path):
    """Rank 1 is SIGKILLed as iteration 5 (epoch 2) starts; torchrun restarts both ranks, which
    resume from epoch_1.pth with no flag typed."""
    lines = _finish(_launch(29563, _args(data, tmp_path), fault='kill:5', max_restarts=1))
    said = [line for line in lines if line.startswith('restarted after a lost rank')]
    assert said == [f'restarted after a lost rank (restart 1/1): resuming from '
                    f'{tmp_path / "epoch_1.pth"}'], lines
    _assert_same_weights(tmp_path / 'epoch_2.pth', reference)


@pytest.mark.slow
def test_sigusr1_writes_a_checkpoint_mid_epoch_that_resumes_exactly_here_and_on_1_process(
        data, reference, tmp_path):
    """SIGUSR1 to the launcher's process group (as slurm's --signal sends it) while rank 0 is
    at the end of iteration 5: every rank stops after it; iter_5.pth holds both ranks'
    generators and where the epoch was; resumed with --resume, the run ends with the
    uninterrupted weights. The same checkpoint resumed on 1 process continues at iteration 5,
    mid-epoch, with the lr of its global batch."""
    proc = _launch(29565, _args(data, tmp_path), fault='wait:5')
    deadline = time.monotonic() + 300
    while not (tmp_path / 'waiting').exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGUSR1)
    lines = _finish(proc, code=128 + signal.SIGUSR1)
    said = [line for line in lines if line.startswith('checkpoint written')]
    assert said == [f'checkpoint written at iteration 5 on SIGUSR1: {tmp_path / "iter_5.pth"}']
    checkpoint = load_checkpoint(tmp_path / 'iter_5.pth')
    assert checkpoint['meta']['iter'] == 5 and checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['resume_point']['epoch_samples'] == 2 * 2 * 3  # 2 steps, 2 ranks
    assert len(checkpoint['rng_states']) == 2
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_5.pth')
    assert not (tmp_path / 'epoch_2.pth').exists()

    _finish(_launch(29567, _args(data, tmp_path, '--resume')))
    _assert_same_weights(tmp_path / 'epoch_2.pth', reference)

    one = tmp_path / 'one'
    lines = _run_one_process(_args(data, one, '--resume', str(tmp_path / 'iter_5.pth')))
    assert ('resumed a checkpoint of 2 processes on 1 (global batch 6 -> 3): lr 0.01 -> 0.005 '
            '(auto_scale_lr: lr x global batch / 6)') in lines
    assert ('the checkpoint holds the random generators of 2 processes, this run has 1: each '
            "rank's are re-derived from the seed (0), the rank and iteration 5") in lines
    end = load_checkpoint(one / 'epoch_2.pth')
    # 12 samples of epoch 2 trained: 4 of its 6 batches of 3 are left out
    assert end['meta']['iter'] == 5 + 2 and end['meta']['epoch'] == 2
    assert end['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.005)


@pytest.mark.slow
def test_a_signal_to_the_launchers_process_group_reaches_torchrun_once(data, tmp_path):
    """torchrun is in a process group of its own, so SIGUSR1 to the launcher's group reaches it
    once, passed on by the launcher. Twice (directly and passed on), the second interrupts
    torchrun's shutdown, which then sends the ranks SIGTERM in place of SIGUSR1 (it did in CI:
    'checkpoint written ... on SIGTERM'). --debug shows torchrun's own log lines."""
    proc = _launch(29571, _args(data, tmp_path, '--debug'), fault='wait:5')
    deadline = time.monotonic() + 300
    while not (tmp_path / 'waiting').exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGUSR1)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-3000:]
    received = re.findall(r'Received (\d+) death signal', err)
    sent = re.findall(r'closing signal (\w+)', err)
    assert received == [str(int(signal.SIGUSR1))], err[-3000:]
    assert sent == ['SIGUSR1', 'SIGUSR1'], err[-3000:]  # one to each rank
    assert f'checkpoint written at iteration 5 on SIGUSR1: {tmp_path / "iter_5.pth"}' in err


def _run_one_process(args) -> list[str]:
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'pretrain', 'train.py'), *args],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr.splitlines()


@pytest.mark.slow
def test_a_checkpoint_of_1_process_resumes_on_2(data, tmp_path):
    _run_one_process(_args(data, tmp_path, epochs=1))
    first = load_checkpoint(tmp_path / 'epoch_1.pth')
    assert first['meta']['iter'] == 6

    lines = _finish(_launch(29569, _args(data, tmp_path, '--resume')))
    assert ('resumed a checkpoint of 1 process on 2 (global batch 3 -> 6): lr 0.005 -> 0.01 '
            '(auto_scale_lr: lr x global batch / 6)') in lines
    assert any(line.startswith('the checkpoint holds the random generators of 1 process, this '
                               'run has 2') for line in lines)
    end = load_checkpoint(tmp_path / 'epoch_2.pth')
    assert end['meta']['iter'] == 6 + 3 and end['meta']['epoch'] == 2
    assert end['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.01)
    # the optimizer state came along: SGD's momentum of every parameter
    assert len(end['optimizer']['state']) == len(first['optimizer']['state'])
    assert end['param_schedulers'][0]['_global_step'] == 2  # the schedule's epoch clock


@pytest.mark.slow
def test_sigterm_on_one_process_writes_a_checkpoint_that_resumes_exactly(data, tmp_path,
                                                                         monkeypatch, capsys):
    """An iteration-based run (--max-iters), one process, SIGTERM during iteration 2."""
    from pretrain.train import main

    def args(work_dir, *extra):
        return _args(data, work_dir, '--max-iters', '4', *extra, epochs=None)

    assert main(args(tmp_path / 'straight')) == 0
    _sigterm_at(2, monkeypatch)
    work = tmp_path / 'stopped'
    with pytest.raises(SystemExit) as stop:
        main(args(work))
    assert stop.value.code == 128 + signal.SIGTERM
    path = work / 'iter_2.pth'
    assert f'checkpoint written at iteration 2 on SIGTERM: {path}' in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    monkeypatch.undo()
    assert main(args(work, '--resume')) == 0
    _assert_same_weights(work / 'iter_4.pth',
                         load_checkpoint(tmp_path / 'straight' / 'iter_4.pth')['state_dict'])


@pytest.mark.slow
@pytest.mark.parametrize('keep', [1, -1])
def test_the_signals_checkpoint_is_deleted_after_a_newer_one_where_max_keep_ckpts_is_set(
        data, tmp_path, monkeypatch, keep):
    """SIGTERM at iteration 2 of 4 writes iter_2.pth; resumed, the run writes iter_4.pth. With
    max_keep_ckpts=1 that deletes iter_2.pth, as the CheckpointHook deletes its own; with -1
    (keep all) both stay."""
    from pretrain.train import main

    args = _args(data, tmp_path, '--max-iters', '4', epochs=None)
    args += [f'default_hooks.checkpoint.max_keep_ckpts={keep}']
    _sigterm_at(2, monkeypatch)
    with pytest.raises(SystemExit):
        main(args)
    monkeypatch.undo()
    meta = load_checkpoint(tmp_path / 'iter_2.pth')['meta']
    assert meta['resume_point']['signal_file'] == 'iter_2.pth'
    assert main([*args, '--resume']) == 0
    assert (tmp_path / 'iter_4.pth').is_file()
    assert (tmp_path / 'iter_2.pth').exists() == (keep == -1)
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_4.pth')


def _sigterm_at(iteration: int, monkeypatch) -> None:
    """This process sends itself SIGTERM at the end of ``iteration`` (before the hook looks)."""
    from mmtransfer.engine import FaultToleranceHook

    after = FaultToleranceHook.after_train_iter

    def signalled(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == iteration:
            os.kill(os.getpid(), signal.SIGTERM)
        return after(self, runner, batch_idx, data_batch, outputs)

    monkeypatch.setattr(FaultToleranceHook, 'after_train_iter', signalled)
