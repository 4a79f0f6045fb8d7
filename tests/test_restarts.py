"""Restarts and resume points, piece by piece (the end-to-end runs: tests/e2e/
test_fault_tolerance.py): which checkpoint a torchrun restart resumes from, the refusal of
restarts that would fail again, MAX_RESTARTS, and the sampler of a mid-epoch resume."""
from __future__ import annotations

import os
import subprocess

import pytest
import torch
from mmengine.config import Config

from mmtransfer import cli
from tests.conftest import REPO


def _checkpoint(path, mtime):
    torch.save({'meta': {'iter': 1}, 'state_dict': {}}, path)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def restarted(tmp_path, monkeypatch):
    """Rank 0 of torchrun's restart 2 of 3, in a launch that started at time 1000."""
    launch = tmp_path / 'torchelastic' / 'none_x'
    (launch / 'attempt_2' / '0').mkdir(parents=True)
    (launch / 'attempt_0').mkdir()
    os.utime(launch / 'attempt_0', (1000, 1000))
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '2')
    monkeypatch.setenv('TORCHELASTIC_MAX_RESTARTS', '3')
    monkeypatch.setenv('TORCHELASTIC_ERROR_FILE', str(launch / 'attempt_2' / '0' / 'error.json'))
    monkeypatch.setenv('RANK', '0')
    work = tmp_path / 'work'
    work.mkdir()
    return work


def _cfg(work):
    return Config(dict(work_dir=str(work), resume=False, load_from=None, custom_hooks=[]))


def test_a_restart_resumes_from_the_newest_checkpoint_of_its_launch(restarted, capsys):
    _checkpoint(restarted / 'epoch_9.pth', 500)  # an earlier job's, in the same work dir
    _checkpoint(restarted / 'iter_7.pth', 2000)
    _checkpoint(restarted / 'epoch_1.pth', 1500)
    cfg = _cfg(restarted)
    cli.set_resume(cfg, None)
    assert cfg.resume and cfg.load_from == str(restarted / 'iter_7.pth')
    assert capsys.readouterr().err == (f'restarted after a lost rank (restart 2/3): resuming '
                                       f'from {restarted / "iter_7.pth"}\n')
    assert [h['type'] for h in cfg.custom_hooks] == ['FaultToleranceHook']
    cli.set_resume(cfg, None)
    assert [h['type'] for h in cfg.custom_hooks] == ['FaultToleranceHook']  # once


def test_before_its_first_checkpoint_a_restart_starts_where_the_launch_did(restarted, capsys):
    _checkpoint(restarted / 'epoch_9.pth', 500)
    cfg = _cfg(restarted)
    cli.set_resume(cfg, None)  # the launch started from scratch: so does its restart
    assert not cfg.resume and cfg.load_from is None
    assert capsys.readouterr().err == (f'restarted after a lost rank (restart 2/3): no '
                                       f'checkpoint yet in {restarted}: training from the '
                                       f'start\n')
    cli.set_resume(cfg, 'auto')  # the launch resumed (--resume): so does its restart
    assert cfg.resume and cfg.load_from == str(restarted / 'epoch_9.pth')


def test_a_rank_that_fails_for_itself_refuses_the_restarts(monkeypatch):
    """An error line, a bug or a signal: the restarts of the launch exit at once with its
    status. A lost peer (a failed collective) does not refuse them."""
    from datetime import timedelta

    import torch.distributed as dist

    store = dist.TCPStore('127.0.0.1', 0, is_master=True, timeout=timedelta(seconds=30))
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(store.port))
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', 'True')
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '0')
    monkeypatch.setenv('TORCHELASTIC_MAX_RESTARTS', '3')

    def lost_peer(argv):
        raise RuntimeError('[gloo/transport/tcp/pair.cc:553] Connection closed by peer')

    def bad_input(argv):
        raise ValueError('data/train/x/1.png: corrupt or truncated image')

    assert cli.run(lost_peer) == 2
    assert cli.refused_restart() is None  # the first start is never refused
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '1')
    assert cli.refused_restart() is None
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '0')
    assert cli.run(bad_input) == 2
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '1')
    assert cli.refused_restart() == 2
    assert cli.run(lambda argv: 0) == 2  # the restart's main does not run


@pytest.mark.parametrize('value', ['x', '-1', '1.5'])
def test_max_restarts_must_be_an_integer(value):
    proc = subprocess.run([os.path.join(REPO, 'tools', 'dist_pretrain.sh'), 'baseline', '2'],
                          cwd=REPO, env=dict(os.environ, MAX_RESTARTS=value),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (f"error: MAX_RESTARTS must be an integer >= 0 (restarts after a lost "
                           f"rank), got '{value}'\n")


def test_a_mid_epoch_resume_leaves_out_what_the_ranks_trained_on_any_world_size(monkeypatch):
    """DefaultSampler gives rank r every world-th index of one permutation: the first k batches
    of 2 ranks are the first 2k batches of 1 rank, so leaving those out on 1 rank continues the
    epoch with the samples not trained yet."""
    from mmengine.dataset import DefaultSampler, sampler

    from mmtransfer.engine.fault_tolerance import _skipping

    def ranks(world):
        out = []
        for rank in range(world):
            monkeypatch.setattr(sampler, 'get_dist_info', lambda r=rank: (r, world))
            out.append(DefaultSampler(list(range(24)), shuffle=True, seed=3))
        return out

    two = ranks(2)
    trained = {i for s in two for i in list(s)[:2 * 3]}  # 2 batches of 3 on each rank
    (one,) = ranks(1)
    whole = list(one)
    one.__class__ = _skipping(DefaultSampler)
    one._skip, one._rng = 12, None
    rest = list(one)
    assert len(one) == len(rest) == 12
    assert set(rest) == set(range(24)) - trained and rest == whole[12:]
    one.__class__ = DefaultSampler
    assert list(one) == whole
