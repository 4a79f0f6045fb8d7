"""What every command-line tool shares: one-line errors, ``--debug``, CPU process groups, flag
types that check paths before any work, and config reading (one-line errors for a missing file,
a directory, a syntax error; checked ``--cfg-options``; warnings for unknown keys).

Known user errors (bad flag, missing file, bad config value) end the program with one line
``error: ...`` on stderr and exit status 2; ``--debug`` re-raises them with the traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import os.path as osp
import re
import sys
from collections.abc import Callable, Sequence

from mmtransfer.fileio import check_output_path  # noqa: F401  (re-exported for the tools)

# Errors that mean "the input is wrong", not "the code is wrong". Besides these, an OSError
# that names a file (a path given as a directory, under a file, unwritable, a full disk) and a
# config key that the class built from it does not take (see user_error_line).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError,
                                                 FloatingPointError, RuntimeError)
# What the OS's own wording leaves unclear, said plainly (an OSError raised with its own
# wording keeps it).
_OS_REASONS = {
    errno.ENOTDIR: 'a part of this path is a file, not a directory',
    errno.EISDIR: 'is a directory, not a file',
    errno.EEXIST: 'exists and is not a directory',
    errno.ENOSPC: 'no space left on device (the disk is full)',
}
# A class that mmengine builds from a config dict, called with a key it does not take.
_UNKNOWN_KEY = re.compile(r"^(?:[\w<>]+\.)*(\w+)\.__init__\(\) got an unexpected keyword "
                          r"argument '(\w+)'")


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

    parser.add_argument('--work-dir', type=output_dir,
                        help='folder for logs, checkpoints and outputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config keys, e.g. train_cfg.max_epochs=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: torchrun / dist_*.sh)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    parser.add_argument('--check-only', action='store_true',
                        help='check the config and inputs, then exit (tools/dist_*.sh run this '
                             'once before starting the ranks)')


# ---------------------------------------------------------------------------- flag types


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (``--seed``)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be an integer >= 0, got {text!r}')
    return value


def non_empty(text: str) -> str:
    """argparse type: a path that is not ``''`` (which a tool would take as "not given")."""
    if not text:
        raise argparse.ArgumentTypeError('must not be empty')
    return text


def _output(text: str, directory: bool) -> str:
    try:
        check_output_path(text, directory)
    except (OSError, ValueError) as err:
        raise argparse.ArgumentTypeError(user_error_line(err)) from None
    return text


def output_dir(text: str) -> str:
    """argparse type: a directory to write into (checked at once)."""
    return _output(text, directory=True)


def output_file(text: str) -> str:
    """argparse type: a file to write (checked at once)."""
    return _output(text, directory=False)


def check_input_file(path: str, what: str = 'file') -> None:
    """``FileNotFoundError`` / ``IsADirectoryError`` naming ``path`` unless it is a file."""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f'is a directory, not a {what}', path)
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, f'{what} not found', path)


# ---------------------------------------------------------------------------- configs


def runner_keys() -> frozenset[str]:
    """The top-level config keys mmengine's ``Runner`` reads."""
    import inspect

    from mmengine.runner import Runner

    return (frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}) | {
        'model_wrapper_cfg', 'sync_bn', 'find_unused_parameters', 'compile', 'runner_type',
        'activation_checkpointing', 'efficient_conv_bn_eval', 'custom_imports'}


def read_config(path: str):
    """``Config.fromfile`` with one-line errors: a missing file, a directory, a Python syntax
    error (file and line)."""
    import ast

    from mmengine.config import Config

    check_input_file(path, 'config file')
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        ast.parse(source, filename=path)
    except SyntaxError as err:
        raise ValueError(f'{path}:{err.lineno}: Python syntax error: {err.msg}') from None
    try:
        return Config.fromfile(path)
    except SyntaxError as err:  # in a file it inherits
        raise ValueError(f'{path}: a file it inherits (_base_) has a Python syntax error: '
                         f'{err}') from None


def warn_unknown_keys(cfg, known, path: str) -> None:
    """One ``warning:`` line per top-level key of ``cfg`` that is neither in ``known`` nor read
    by the Runner: a typo would otherwise be ignored. (Warnings, not errors: configs may define
    helper variables.)"""
    for key in sorted(set(cfg.keys()) - set(known) - runner_keys()):
        print(f'warning: {path}: unknown top-level key {key!r} (a typo?)', file=sys.stderr)


_MISSING = object()


def _config_value(cfg, key: str):
    """The value at dotted ``key`` (list items by index), or ``_MISSING``."""
    value = cfg
    for part in key.split('.'):
        if hasattr(value, 'keys'):  # a dict, ConfigDict or mmengine Config
            value = value.get(part, _MISSING)
        elif isinstance(value, list | tuple) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def merge_cfg_options(cfg, options: dict | None) -> None:
    """``--cfg-options`` into ``cfg``, refusing what would otherwise be ignored or fail later
    without naming the key: a top-level key that neither the config nor the Runner has, and a
    string where the config holds a number, a bool or a list."""
    if not options:
        return
    known = set(cfg.keys()) | runner_keys()
    for key, value in options.items():
        top = key.split('.')[0]
        if top not in known:
            raise ValueError(f'--cfg-options {key}: {top!r} is not a top-level key of the '
                             'config (a typo?)')
        old = _config_value(cfg, key)
        if isinstance(value, str) and isinstance(old, bool | int | float | list | tuple):
            kind = ('True or False' if isinstance(old, bool) else
                    'a number' if isinstance(old, int | float) else 'a list')
            raise ValueError(f'--cfg-options {key}={value}: expected {kind} (the config has '
                             f'{old!r})')
    cfg.merge_from_dict(options)


def run(main: Callable[[Sequence[str] | None], int | None],
        argv: Sequence[str] | None = None) -> int:
    """Runs ``main(argv)``, turning known user errors into one line and exit status 2.

    Under torchrun, a rank that ends on anything but a lost peer (an error line, a bug, a
    preemption stop) keeps the restarts of this launch from running again what would fail the
    same way: they exit at once with its status (:func:`refuse_restarts`).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    code = refused_restart()
    if code is not None:
        return code
    try:
        code = main(args) or 0
    except SystemExit as done:  # argparse: --help, or a bad flag (already printed)
        code = done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        code = 130
    except (*USER_ERRORS, OSError, TypeError) as err:
        line = user_error_line(err)
        if line is None or '--debug' in args:
            _refuse_restarts_after(err, 1)
            raise
        print(f'error: {line}', file=sys.stderr)
        _refuse_restarts_after(err, 2)
        return 2
    except BaseException as err:
        _refuse_restarts_after(err, 1)
        raise
    if code:
        refuse_restarts(code)
    return code


# The loops a Runner builds from a config key, when the key names no type.
_DEFAULT_LOOPS = {'train_cfg': None, 'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}


def check_build_keys(cfg, loops: Sequence[str] = ('train_cfg', 'val_cfg', 'test_cfg')) -> None:
    """Refuses, before the Runner is built (it writes the work dir), a key that the loop or
    hook class built from a config dict does not take: ``--cfg-options train_cfg.bogus=1`` is
    one ``error:`` line with no output written, where mmengine would fail on it after the log
    folder exists. A class that takes ``**kwargs``, or that the registry of the config's scope
    does not know, is left to mmengine."""
    from mmengine.registry import HOOKS, LOOPS

    scope = cfg.get('default_scope')
    for key in loops:
        loop = cfg.get(key)
        if not loop:
            continue
        loop = dict(loop)
        name = loop.pop('type', None) or _DEFAULT_LOOPS[key]
        if name is None:  # train_cfg without a type: by_epoch picks the loop
            name = 'EpochBasedTrainLoop' if loop.pop('by_epoch', True) else 'IterBasedTrainLoop'
        _check_keys(LOOPS, scope, name, loop, key)
    hooks = [(f'default_hooks.{name}', hook) for name, hook in
             (cfg.get('default_hooks') or {}).items()]
    hooks += [(f'custom_hooks.{i}', hook) for i, hook in enumerate(cfg.get('custom_hooks') or [])]
    for where, hook in hooks:
        if hasattr(hook, 'keys') and 'type' in hook:
            hook = dict(hook)
            _check_keys(HOOKS, scope, hook.pop('type'), hook, where)


def _check_keys(registry, scope: str | None, name, options: dict, where: str) -> None:
    import inspect

    scope = options.pop('_scope_', scope)  # a dict's own scope (a config from a package)
    with registry.switch_scope_and_registry(scope) as scoped:
        cls = scoped.get(name) if isinstance(name, str) else name
    if not isinstance(cls, type):
        return
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f'{where}: {_no_option(cls.__name__, unknown[0])}')


def _no_option(name: str, key: str) -> str:
    return f'{name} has no option {key!r} (a typo in the config or --cfg-options?)'


def user_error_line(err: BaseException) -> str | None:
    """The one line to show for a user error, or None for an error of the code."""
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or type(err).__name__
        if err.errno in _OS_REASONS and reason == os.strerror(err.errno):
            reason = _OS_REASONS[err.errno]
        return f'{err.filename}: {reason}'
    if isinstance(err, TypeError) and _raised_in_mmengine(err):
        match = _UNKNOWN_KEY.match(str(err))
        return match and _no_option(match[1], match[2])
    return one_line(err) if isinstance(err, USER_ERRORS) else None


def _raised_in_mmengine(err: BaseException) -> bool:
    """Whether the innermost frame is mmengine's: for a call with a keyword the callee does
    not take, the caller's (mmengine's registry or Runner, building from config), not ours."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f'{os.sep}mmengine{os.sep}' in tb.tb_frame.f_code.co_filename


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
    """Starts the process group for ``--launcher pytorch`` where mmengine's own start fails.

    - On a machine without CUDA: mmengine's launcher pins a CUDA device first; a gloo group is
      started instead.
    - After a torchrun restart: torch's elastic agent keeps its key-value store across restarts,
      and the previous attempt's keys in it, so a new group would connect to the addresses of
      the ranks that are gone (gloo: "connectFullMesh failed ... Connection refused"). The group
      gets a store prefix of its own per attempt (gloo, or NCCL on the rank's GPU).

    Once a group exists, mmengine uses it as it is.
    """
    import torch
    import torch.distributed as dist

    if launcher != 'pytorch' or dist.is_initialized():
        return
    cuda = torch.cuda.is_available()
    restart, _ = restart_count()
    agent_store = restart and os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True'
    if cuda and not agent_store:
        return  # mmengine starts NCCL
    os.environ.setdefault('LOCAL_RANK', '0')
    kwargs = {}
    if agent_store:
        from torch.distributed.constants import default_pg_timeout

        world, rank = int(os.environ['WORLD_SIZE']), int(os.environ['RANK'])
        store = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), world,
                              is_master=False, timeout=default_pg_timeout)
        kwargs = dict(store=dist.PrefixStore(f'mmtransfer/attempt_{restart}', store), rank=rank,
                      world_size=world)
    if cuda:
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    dist.init_process_group(backend='nccl' if cuda else 'gloo', **kwargs)


# ---------------------------------------------------------------------------- resume, restarts


def restart_count() -> tuple[int, int]:
    """``(k, n)``: this process belongs to torchrun's restart k of at most n (``--max-restarts``;
    k = 0 on the first start); ``(0, 0)`` outside torchrun."""
    return (int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)),
            int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', 0)))


def _launch_dir() -> str | None:
    """torchrun's folder for this launch (``<log dir>/<run id>_<random>``), from the error file
    it gives each rank (``.../attempt_<k>/<local rank>/error.json``)."""
    error_file = os.environ.get('TORCHELASTIC_ERROR_FILE')
    return osp.dirname(osp.dirname(osp.dirname(error_file))) if error_file else None


def _launch_time() -> float | None:
    """When torchrun started this launch: the time its first attempt's folder was made."""
    folder = _launch_dir()
    try:
        return os.path.getmtime(osp.join(folder, 'attempt_0')) if folder else None
    except OSError:
        return None


_NO_RESTART = 'mmtransfer/no_restart'


def _agent_store():
    """A client of the key-value store torchrun's agent keeps for the whole launch (every node's
    ranks reach it), or None."""
    if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True':
        return None
    from datetime import timedelta

    import torch.distributed as dist

    try:
        return dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']),
                             is_master=False, timeout=timedelta(seconds=30))
    except (KeyError, ValueError, RuntimeError):
        return None


def refuse_restarts(code: int) -> None:
    """Keeps torchrun from running again what would fail the same way: its later restarts of
    this launch, on every node, exit at once with ``code`` (a key in the agent's store), and
    for an error or a bug (not a signal) this node's agent is asked to stop when this process
    exits (SIGTERM), which ends the launch without them. Nothing outside torchrun or when no
    restart is left."""
    restart, most = restart_count()
    if restart >= most:
        return
    store = _agent_store()
    if store is None:
        return
    store.set(_NO_RESTART, str(code))
    if code in (1, 2) and _is_torchrun(os.getppid()):
        import atexit
        import signal

        # at exit: after the error line or the traceback is out
        atexit.register(os.kill, os.getppid(), signal.SIGTERM)


def _is_torchrun(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            command = f.read()
    except OSError:
        return False
    return b'torch.distributed.run' in command or b'torchrun' in command


def refused_restart() -> int | None:
    """The exit status a restarted rank ends with at once, when a rank before it refused the
    restarts (:func:`refuse_restarts`); None otherwise."""
    if not restart_count()[0]:
        return None
    store = _agent_store()
    if store is None or not store.check([_NO_RESTART]):
        return None
    return int(store.get(_NO_RESTART) or 1)


def _lost_peer(err: BaseException) -> bool:
    """Whether an error is the consequence of another rank that is gone (a collective that
    failed): the case torchrun's restarts are for."""
    import torch.distributed as dist

    return isinstance(err, dist.DistError) or bool(
        re.search(r'by peer|NCCL|gloo|connectFullMesh', str(err)))


def _refuse_restarts_after(err: BaseException, code: int) -> None:
    if not _lost_peer(err):
        refuse_restarts(code)


def _rank0() -> bool:
    return os.environ.get('RANK', '0') == '0'


def set_resume(cfg, resume: str | None) -> None:
    """``--resume [CHECKPOINT]`` and the resume of a torchrun restart, on ``cfg``; and the
    :class:`~mmtransfer.engine.FaultToleranceHook` (checkpoint on SIGTERM / SIGUSR1, mid-epoch
    and other-world-size resume).

    A restart (torchrun's ``TORCHELASTIC_RESTART_COUNT`` > 0, after a lost rank) resumes by
    itself from the newest complete checkpoint this launch wrote in the work dir, else from what
    ``--resume`` named, else from the start, and says so in one line.
    """
    import mmtransfer.engine  # noqa: F401  (registers the hook)

    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'FaultToleranceHook' for h in hooks):
        cfg.custom_hooks = [*hooks, dict(type='FaultToleranceHook')]
    restart, most = restart_count()
    if restart:
        path = _latest_checkpoint(cfg.work_dir, since=_launch_time())
        path = resolve_resume(path or resume, cfg.work_dir) if (path or resume) else None
        if _rank0():
            what = (f'resuming from {path}' if path else
                    f'no checkpoint yet in {cfg.work_dir}: training from the start')
            print(f'restarted after a lost rank (restart {restart}/{most}): {what}',
                  file=sys.stderr, flush=True)
        if path is None:
            return
    elif resume is not None:
        path = resolve_resume(resume, cfg.work_dir)
    else:
        return
    cfg.resume = True
    cfg.load_from = path


def _latest_checkpoint(work_dir: str, since: float | None = None) -> str | None:
    """Newest ``(epoch|iter)_N.pth`` in ``work_dir``, else the ``last_checkpoint`` pointer. With
    ``since`` (a time), only the files written since then, and no pointer."""
    import glob

    found = [p for p in glob.glob(os.path.join(glob.escape(work_dir), '*_*.pth'))
             if re.fullmatch(r'(epoch|iter)_\d+\.pth', os.path.basename(p))]
    if since is not None:
        found = [p for p in found if os.path.getmtime(p) >= since]
    if found:
        return max(found, key=os.path.getmtime)
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if since is None and os.path.isfile(pointer):
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
