"""What a pretraining run was trained with, read back from its work dir, for table labels.

mmengine dumps the full config of a run into its work dir (``<work_dir>/<config name>.py``). A
mixing method trained with ``model.mix.start_iter = N > 0`` (the CPU demos' warm start) mixes
only from step N, so a results table names its row, e.g. ``dense_distill (500 warm steps)``
(:func:`row_label`), instead of passing it off as the paper's method.

The dumped file is read with :mod:`ast`, literal values only: nothing in it is run, and a file
that cannot be read that way counts as unknown (``None``), never as an error.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

__all__ = ['dumped_mix', 'warm_steps', 'row_label']

#: methods that never mix, for which ``start_iter`` changes nothing
NOT_MIXING = frozenset({'baseline'})
#: the value of an entry that is not a plain literal (an expression we do not run)
NOT_LITERAL = object()


def _keywords(node: ast.AST) -> dict[str, ast.AST] | None:
    """``dict(a=..., b=...)`` or ``{'a': ..., 'b': ...}`` -> name -> value node; else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict':
        return {k.arg: k.value for k in node.keywords if k.arg is not None}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return None


def _mix_of(path: Path) -> dict | None:
    """The literal entries of ``model = dict(..., mix=dict(...))`` in one config file."""
    try:
        tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and statement.targets[0].id == 'model'):
            continue
        model = _keywords(statement.value)
        mix = _keywords(model['mix']) if model and 'mix' in model else None
        if mix is None:
            continue
        out = {}
        for key, node in mix.items():
            try:
                out[key] = ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                out[key] = NOT_LITERAL
        return out
    return None


def dumped_mix(work_dir: str | Path) -> dict | None:
    """``model.mix`` of the config mmengine dumped into ``work_dir`` (an entry that is not a
    literal reads :data:`NOT_LITERAL`), or None when the folder holds no such config. With
    several ``*.py`` files, the first in name order that has ``model.mix``."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return None
    for path in sorted(work_dir.glob('*.py')):
        if path.is_file() and (mix := _mix_of(path)) is not None:
            return mix
    return None


def warm_steps(work_dir: str | Path) -> int | None:
    """Steps the run in ``work_dir`` trained before it started mixing: ``mix.start_iter`` for a
    mixing method, 0 for a run that mixes from the first step or never mixes (``baseline``),
    None when unknown (no dumped config, or a ``start_iter`` that is not an integer literal)."""
    mix = dumped_mix(work_dir)
    if mix is None:
        return None
    start = mix.get('start_iter', 0)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        return None
    return 0 if mix.get('method') in NOT_MIXING else start


def row_label(name: str, steps: Iterable[int | None]) -> str:
    """``name``, or ``name (N warm steps)`` when its runs (one value per run, e.g. per seed;
    None = unknown) started mixing after N > 0 steps; runs that disagree are all named,
    e.g. ``name (0, 500 warm steps)``."""
    known = {s for s in steps if s is not None}
    if not any(known):
        return name
    return f'{name} ({", ".join(str(s) for s in sorted(known))} warm steps)'
