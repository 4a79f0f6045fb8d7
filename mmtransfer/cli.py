"""What every command-line tool shares: one-line errors, ``--debug``, CPU process groups.

Known user errors (bad flag, missing file, bad config value) end the program with one line
``error: ...`` on stderr and exit status 2; ``--debug`` re-raises them with the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

# Errors that mean "the input is wrong", not "the code is wrong".
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError,
                                                 FloatingPointError, RuntimeError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and the worked example kept verbatim."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags mmdet's tools share: ``--work-dir``, ``--cfg-options``, ``--launcher``, ..."""
    from mmengine.config import DictAction

    parser.add_argument('--work-dir', help='folder for logs, checkpoints and outputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys, e.g. train_cfg.max_epochs=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: torchrun / dist_*.sh)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    parser.add_argument('--check-only', action='store_true',
                        help='check the config and inputs, then exit (tools/dist_*.sh run this '
                             'once before starting the ranks)')


def run(main: Callable[[Sequence[str] | None], int | None],
        argv: Sequence[str] | None = None) -> int:
    """Runs ``main(argv)``, turning known user errors into one line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(args) or 0
    except SystemExit as done:  # argparse: --help, or a bad flag (already printed)
        return done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if '--debug' in args:
            raise
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str:
    """The line of an exception's message that names the cause.

    An error raised in a DataLoader worker is re-raised as ``Caught X in DataLoader worker
    process N.`` followed by the worker's traceback; its last line is the original message.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith('Caught ') and len(lines) > 1:
        last = lines[-1]
        return last.split(': ', 1)[1] if ': ' in last else last
    return lines[0]


def init_cpu_distributed(launcher: str) -> None:
    """Starts a gloo process group for ``--launcher pytorch`` on a machine without CUDA.

    mmengine's launcher pins a CUDA device first, which fails without one; once a group
    exists, mmengine uses it as it is.
    """
    import torch
    import torch.distributed as dist

    if launcher == 'pytorch' and not torch.cuda.is_available() and not dist.is_initialized():
        os.environ.setdefault('LOCAL_RANK', '0')
        dist.init_process_group(backend='gloo')


def _latest_checkpoint(work_dir: str) -> str | None:
    """Newest ``(epoch|iter)_N.pth`` in ``work_dir``, else the ``last_checkpoint`` pointer."""
    import glob
    import re

    found = [p for p in glob.glob(os.path.join(glob.escape(work_dir), '*_*.pth'))
             if re.fullmatch(r'(epoch|iter)_\d+\.pth', os.path.basename(p))]
    if found:
        return max(found, key=os.path.getmtime)
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer):
        with open(pointer) as f:
            return f.read().strip() or None
    return None


def resolve_resume(resume: str, work_dir: str) -> str | None:
    """The checkpoint ``--resume [CHECKPOINT]`` means, checked before the Runner starts.

    ``auto`` is the work dir's newest ``epoch_N.pth`` / ``iter_N.pth`` (complete, since they
    are written atomically), else what mmengine's ``last_checkpoint`` file names (checkpoints in
    another ``out_dir``), or ``None`` when there is none (training then starts from scratch, as in
    mmdet). mmengine writes ``last_checkpoint`` in place after the checkpoint itself, so a job
    killed in between leaves it stale or empty: it is not trusted over the files. A file that is
    missing, truncated or not an mmengine checkpoint is an error naming it.
    """
    from mmtransfer.loading import CheckpointError, load_checkpoint

    path = _latest_checkpoint(work_dir) if resume == 'auto' else resume
    if path is None:
        return None
    ckpt = load_checkpoint(path, map_location='cpu')
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict)
            and isinstance(ckpt.get('meta'), dict)):
        raise CheckpointError(f'{path}: not an mmengine training checkpoint '
                              '(expected a dict with "state_dict" and "meta")')
    return path
