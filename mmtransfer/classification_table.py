"""The paper's Table 1 layout from classification runs, and what the summary tables share.

Runs live in ``ROOT/<recipe>/<method>/seed<N>/`` and hold any of::

    val_metrics.json                   the last validation of training: accuracy/top1 (%)
    eval/eval_metrics.json             tools/evaluate.py: top1, fgsm_top1_error, pgd_top1_error,
                                       ood_auroc, ood_aupr, ood_detection_accuracy (%), ece (a
                                       fraction) and the attack settings
    embeddings/embeddings_metrics.json tools/analyze_embeddings.py: alignment, uniformity

:func:`load_runs` reads them (one-line :class:`SummaryError` for bad input), :func:`combine`
gives mean ± sample std per (recipe, method) cell, :func:`format_markdown` /
:func:`format_csv` render the tables (top-1 beside the paper's figures, then robustness,
calibration, OOD detection and embeddings) and :func:`margin_failures` checks that every row
beats a reference row. Values are kept in the unit shown: percent (the ECE x100), alignment and
uniformity as they are. A method whose runs mixed only after a warm start (``mix.start_iter``
N > 0 in the config dumped into each seed folder, :func:`warm_starts`) is shown as
``<method> (N warm steps)``; the CSV keeps the plain method.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from mmtransfer import run_info
from mmtransfer.paper_figures import PAPER, PAPER_TOP1

METHOD_ORDER = ('untrained', 'baseline', 'mixup', 'cutmix', 'manifold_mixup', 'multimix',
                'dense', 'distill', 'dense_distill')
# The paper's Table 1 columns: CIFAR-10 (R-18, W16-8), CIFAR-100 (R-18, W16-8), TinyImageNet.
RECIPE_ORDER = ('cifar10_preactresnet18', 'cifar10_wrn16_8', 'cifar100_preactresnet18',
                'cifar100_wrn16_8', 'tinyimagenet_preactresnet18')
FILES = dict(val='val_metrics.json', eval='eval/eval_metrics.json',
             embeddings='embeddings/embeddings_metrics.json')
MISSING = '—'
# An eval_metrics.json's "attack" record: numbers; pgd_eps comes with its step and iterations.
ATTACK_NUMBERS = ('fgsm_eps', 'pgd_eps', 'pgd_step', 'pgd_iters')


class SummaryError(ValueError):
    """Bad or missing input; the message is the one-line error shown to the user."""


class Column(NamedTuple):
    key: str              # CSV column and --check-margin name
    header: str           # Markdown header
    source: str           # key of FILES
    name: str             # key in that JSON file
    scale: float          # JSON value -> the unit shown
    limit: float | None   # the JSON value must lie in [0, limit]; None: any finite number
    lower_is_better: bool
    decimals: int         # in the Markdown table (the CSV keeps two more)


TOP1 = Column('top1', 'top-1', 'val', 'accuracy/top1', 1.0, 100.0, False, 1)
DETAIL_COLUMNS = (
    Column('eval_top1', 'top-1', 'eval', 'top1', 1.0, 100.0, False, 1),
    Column('fgsm_err', 'FGSM err', 'eval', 'fgsm_top1_error', 1.0, 100.0, True, 1),
    Column('pgd_err', 'PGD err', 'eval', 'pgd_top1_error', 1.0, 100.0, True, 1),
    Column('ece', 'ECE (×100)', 'eval', 'ece', 100.0, 1.0, True, 1),
    Column('ood_auroc', 'OOD AUROC', 'eval', 'ood_auroc', 1.0, 100.0, False, 1),
    Column('ood_aupr', 'OOD AUPR', 'eval', 'ood_aupr', 1.0, 100.0, False, 1),
    Column('ood_det_acc', 'OOD det. acc.', 'eval', 'ood_detection_accuracy', 1.0, 100.0, False,
           1),
    Column('alignment', 'alignment', 'embeddings', 'alignment', 1.0, None, True, 2),
    Column('uniformity', 'uniformity', 'embeddings', 'uniformity', 1.0, None, True, 2),
)
COLUMNS = (TOP1, *DETAIL_COLUMNS)
BY_KEY = {c.key: c for c in COLUMNS}

Cell = tuple[str, str]  # (recipe, method)
Runs = dict[Cell, list[dict[str, float]]]  # one dict per seed: column key -> value (if any)


class Stat(NamedTuple):
    mean: float | None  # over the runs that have the value; None with none
    std: float | None   # sample std (n - 1); None with fewer than 2 runs
    n: int              # runs that have the value


class Row(NamedTuple):
    seeds: int                # seed folders of the cell with any metrics file
    stats: dict[str, Stat]    # column key -> Stat, every column


Table = dict[Cell, Row]


# ------------------------------------------------------------------------------ reading


def read_json_object(path: Path) -> dict:
    """A JSON file holding an object; SummaryError naming ``path`` otherwise."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SummaryError(f'{path}: not a readable JSON file ({err})') from err
    if not isinstance(metrics, dict):
        raise SummaryError(f'{path}: expected a JSON object of metric name -> value')
    return metrics


def number(path: Path, metrics: dict, key: str) -> float | None:
    """``metrics[key]`` as a float; None when absent, null or NaN. SummaryError naming ``path``
    and ``key`` for a non-number or an infinity (JSON's Infinity, 1e999)."""
    value = metrics.get(key)
    if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool)):
        raise SummaryError(f'{path}: {key} is not a number: {value!r}')
    if value is not None and math.isinf(value):
        raise SummaryError(f'{path}: {key} is not finite: {value!r}')
    return None if value is None or math.isnan(value) else float(value)


def check_attack(path: Path, attack) -> None:
    """SummaryError unless ``attack`` is an attack record: finite numbers, and pgd_eps with
    pgd_step and pgd_iters."""
    if not isinstance(attack, dict):
        raise SummaryError(f'{path}: "attack" is not an object of attack settings: {attack!r}')
    for key in ATTACK_NUMBERS:
        value = attack.get(key)
        if key in attack and not (isinstance(value, int | float) and not isinstance(value, bool)
                                  and math.isfinite(value)):
            raise SummaryError(f'{path}: attack.{key} is not a finite number: {value!r}')
    if 'pgd_eps' in attack and not {'pgd_step', 'pgd_iters'} <= attack.keys():
        raise SummaryError(f'{path}: attack has pgd_eps without pgd_step and pgd_iters')


def shared_attack(records: Iterable[tuple[Path, object]]) -> dict | None:
    """The attack record every ``(eval_metrics.json, its "attack")`` pair shares; None without
    any. Runs attacked differently are not comparable: a mismatch is an error naming both
    files."""
    first = None
    for path, attack in records:
        check_attack(path, attack)
        if first is None:
            first = (path, attack)
        elif attack != first[1]:
            raise SummaryError(f'{path}: attack settings {attack} differ from {first[0]}\'s '
                               f'{first[1]}; evaluate every run with the same --fgsm-eps, '
                               f'--pgd-eps, --pgd-step and --pgd-iters')
    return None if first is None else first[1]


def describe_attacks(attack: dict) -> str:
    """``'FGSM eps 8/255; PGD eps 4/255, 20 steps of 2/255'`` from an ``attack`` record."""
    def px(value):
        return f'{255 * value:.3g}/255'
    parts = []
    if 'fgsm_eps' in attack:
        parts.append(f'FGSM eps {px(attack["fgsm_eps"])}')
    if 'pgd_eps' in attack:
        parts.append(f'PGD eps {px(attack["pgd_eps"])}, {attack["pgd_iters"]} steps of '
                     f'{px(attack["pgd_step"])}')
    return '; '.join(parts)


def read_run(seed_dir: Path) -> tuple[dict[str, float], dict | None]:
    """One ``seed<N>`` folder -> (column key -> value in the unit shown, the eval's attack
    record or None). Missing files and keys, null and NaN leave the column out."""
    run: dict[str, float] = {}
    attack = None
    for source, name in FILES.items():
        path = seed_dir / name
        if not path.is_file():
            continue
        metrics = read_json_object(path)
        if source == 'eval':
            attack = metrics.get('attack', {})
        for column in (c for c in COLUMNS if c.source == source):
            value = number(path, metrics, column.name)
            if value is None:
                continue
            if column.limit is not None and not 0 <= value <= column.limit:
                unit = 'a percentage' if column.limit == 100 else 'a fraction'
                raise SummaryError(f'{path}: {column.name} is not {unit} in [0, '
                                   f'{column.limit:g}]: {value!r}')
            run[column.key] = column.scale * value
    return run, attack


def find_runs(root: Path) -> dict[Cell, list[Path]]:
    """``root/<recipe>/<method>/seed*/`` folders holding any metrics file, by (recipe, method);
    SummaryError when ``root`` has none."""
    if not root.is_dir():
        raise SummaryError(f'{root}: no such directory')
    found: dict[Cell, list[Path]] = {}
    for seed_dir in sorted(p for p in root.glob('*/*/seed*') if p.is_dir()):
        if any((seed_dir / name).is_file() for name in FILES.values()):
            found.setdefault((seed_dir.parent.parent.name, seed_dir.parent.name),
                             []).append(seed_dir)
    if not found:
        raise SummaryError(f'{root}: no runs found (expected <recipe>/<method>/seed<N>/ holding '
                           f'{", ".join(FILES.values())})')
    return found


def load_runs(roots: Iterable[Path]) -> tuple[Runs, dict | None]:
    """Every run under ``roots`` (pooled) -> (runs by (recipe, method), the attack record all
    evaluated runs share, or None). A seed found under two roots is an error (a root given
    twice would halve the std)."""
    runs: Runs = {}
    seen: dict[tuple[str, str, str], Path] = {}
    attacks = []
    for root in roots:
        for cell, seed_dirs in find_runs(root).items():
            for seed_dir in seed_dirs:
                if (key := (*cell, seed_dir.name)) in seen:
                    raise SummaryError(f'{seed_dir}: {"/".join(key)} is also under '
                                       f'{seen[key]} (the same root given twice?)')
                seen[key] = root
                run, attack = read_run(seed_dir)
                runs.setdefault(cell, []).append(run)
                if attack is not None:
                    attacks.append((seed_dir / FILES['eval'], attack))
    return runs, shared_attack(attacks)


def warm_starts(roots: Iterable[Path]) -> dict[Cell, list[int | None]]:
    """(recipe, method) -> the warm steps of each of its seed folders under ``roots``
    (:func:`mmtransfer.run_info.warm_steps`; None where unknown)."""
    warm: dict[Cell, list[int | None]] = {}
    for root in roots:
        for cell, seed_dirs in find_runs(root).items():
            warm.setdefault(cell, []).extend(run_info.warm_steps(d) for d in seed_dirs)
    return warm


def _label(method: str, cells: Iterable[Cell], warm: dict[Cell, list[int | None]] | None) -> str:
    """``method``, named with the warm steps of its runs in ``cells``."""
    return run_info.row_label(method, [s for cell in cells for s in (warm or {}).get(cell, ())])


# ------------------------------------------------------------------------------ the table


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, sample std with n - 1); None for the mean of none, the std of fewer than 2."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def combine(runs: Runs) -> Table:
    """Runs by cell -> one :class:`Row` per cell: mean ± std of every column over its seeds."""
    table: Table = {}
    for cell, cell_runs in runs.items():
        stats = {}
        for column in COLUMNS:
            values = [r[column.key] for r in cell_runs if column.key in r]
            stats[column.key] = Stat(*mean_std(values), len(values))
        table[cell] = Row(len(cell_runs), stats)
    return table


def _ordered(names: Iterable[str], order: tuple[str, ...]) -> list[str]:
    names = set(names)
    return [n for n in order if n in names] + sorted(names - set(order))


def recipes_of(table: Table) -> list[str]:
    """Recipes in the paper's Table 1 order; unknown ones follow alphabetically."""
    return _ordered((r for r, _ in table), RECIPE_ORDER)


def methods_of(table: Table) -> list[str]:
    """Methods in the paper's order after ``untrained``; unknown ones follow alphabetically."""
    return _ordered((m for _, m in table), METHOD_ORDER)


def _seeds_caption(stats: list[Stat]) -> tuple[str, bool]:
    """(how the cells are made, whether each cell must name its seed count)."""
    counts = {s.n for s in stats if s.mean is not None}
    if len(counts) > 1:
        return 'mean ± std (seeds)', True
    n = counts.pop() if counts else 0
    return {0: 'no values', 1: '1 seed'}.get(n, f'mean ± std over {n} seeds'), False


def _cell(stat: Stat, decimals: int, with_n: bool) -> str:
    if stat.mean is None:
        return MISSING
    text = f'{stat.mean:.{decimals}f}'
    if stat.std is not None:
        text += f' ± {stat.std:.{decimals}f}'
    return text + (f' ({stat.n})' if with_n else '')


def _markdown_table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ':--|' * left + '--:|' * (len(header) - left)]
    return lines + ['| ' + ' | '.join(r) + ' |' for r in rows]


def _paper_for(table: Table, paper: dict) -> dict[Cell, tuple[float, str]]:
    """The paper's figures for the cells in ``table``."""
    return {cell: figure for cell, figure in paper.items() if cell in table}


def main_table(table: Table, title: str, paper: dict = PAPER_TOP1,
               warm: dict[Cell, list[int | None]] | None = None) -> str:
    """Rows = methods, columns = recipes, cell = top-1 mean ± std; beside a recipe's column, the
    paper's figure and ours − paper when the paper states one for any of its rows. Notes
    below. ``warm`` (:func:`warm_starts`) names warm-started rows."""
    recipes, methods = recipes_of(table), methods_of(table)
    shown = _paper_for(table, paper)
    caption, with_n = _seeds_caption([row.stats['top1'] for row in table.values()])
    header, rows = ['method'], []
    for recipe in recipes:
        header += [recipe, 'paper', 'Δ'] if any(r == recipe for r, _ in shown) else [recipe]
    for method in methods:
        cells = [_label(method, [(r, method) for r in recipes], warm)]
        for recipe in recipes:
            stat = (table[recipe, method].stats['top1'] if (recipe, method) in table
                    else Stat(None, None, 0))
            cells.append(_cell(stat, TOP1.decimals, with_n))
            if any(r == recipe for r, _ in shown):
                figure = shown.get((recipe, method))
                cells.append(MISSING if figure is None else f'{figure[0]:.2f}')
                cells.append(MISSING if figure is None or stat.mean is None
                             else f'{stat.mean - figure[0]:+.1f}')
        rows.append(cells)
    lines = [f'{title}: top-1 accuracy (%), {caption}', '']
    lines += _markdown_table(header, rows, left=1)
    notes = []
    if any(MISSING in r for r in rows):
        notes.append(f'{MISSING}: no value (no run of the cell has it, or it is NaN)'
                     + ('; in the paper and Δ columns, the paper\'s text states no figure '
                        'for that setting' if shown else '') + '.')
    notes.append('top-1: the last validation of each run (the paper is silent on last vs best).')
    if shown:
        quoted = '; '.join(f'{recipe} {method} {figure:.2f}: {source}'
                           for (recipe, method), (figure, source) in sorted(
                               shown.items(), key=lambda kv: (recipes.index(kv[0][0]),
                                                              methods.index(kv[0][1]))))
        notes.append(f'paper: top-1 quoted from the text of {PAPER} (mean of 5 runs): {quoted}. '
                     f'Δ: ours − paper.')
    return '\n'.join(lines) + '\n\n' + '\n\n'.join(notes) + '\n'


def detail_table(table: Table, title: str, attack: dict | None,
                 warm: dict[Cell, list[int | None]] | None = None) -> str | None:
    """Robustness, calibration, OOD detection and embeddings: one row per (recipe, method) of
    every recipe with any of them, the columns some run has; None when no run has any."""
    recipes = [r for r in recipes_of(table) if any(
        row.stats[c.key].n for (recipe, _), row in table.items() if recipe == r
        for c in DETAIL_COLUMNS)]
    if not recipes:
        return None
    columns = [c for c in DETAIL_COLUMNS if any(row.stats[c.key].n for row in table.values())]
    cells = [(r, m) for r in recipes for m in methods_of(table) if (r, m) in table]
    caption, with_n = _seeds_caption([table[cell].stats[c.key] for cell in cells
                                      for c in columns])
    rows = [[recipe, _label(method, [(recipe, method)], warm)]
            + [_cell(table[recipe, method].stats[c.key], c.decimals, with_n) for c in columns]
            for recipe, method in cells]
    lines = [f'{title}: robustness, calibration, OOD detection and embeddings, {caption}', '']
    lines += _markdown_table(['recipe', 'method'] + [c.header for c in columns], rows, left=2)
    notes = []
    if any(MISSING in r for r in rows):
        notes.append(f'{MISSING}: no value (no run of the cell has it, or it is NaN).')
    lower = ', '.join(c.header for c in columns if c.lower_is_better)
    notes.append('top-1 here: tools/evaluate.py\'s clean accuracy of the evaluated checkpoint; '
                 'FGSM / PGD err: top-1 error (%) under attack; ECE: expected calibration '
                 'error ×100; OOD AUROC / AUPR / det. acc. (%): maximum softmax probability as '
                 'the score; alignment, '
                 'uniformity: tools/analyze_embeddings.py, unscaled.'
                 + (f' Lower is better: {lower}.' if lower else ''))
    if attack and (attacks := describe_attacks(attack)):
        notes.append(f'Attacks (pixel space): {attacks}.')
    return '\n'.join(lines) + '\n\n' + '\n\n'.join(notes) + '\n'


def format_markdown(table: Table, title: str | None = None, attack: dict | None = None,
                    paper: dict = PAPER_TOP1,
                    warm: dict[Cell, list[int | None]] | None = None) -> str:
    """The Markdown file: the Table 1 layout, then (when any run has them) the robustness,
    calibration, OOD and embedding metrics with the attack settings. ``warm``
    (:func:`warm_starts`) names the warm-started rows."""
    title = title or 'Image classification'
    parts = [main_table(table, title, paper, warm), detail_table(table, title, attack, warm)]
    return '\n'.join(p for p in parts if p)


def format_csv(table: Table, paper: dict = PAPER_TOP1) -> str:
    """One line per (recipe, method): ``seeds``, every column and its ``_std`` (empty where
    missing; the unit of the Markdown, two more decimals), ``paper`` (as quoted) and
    ``paper_delta`` (ours − paper) beside ``top1``."""
    def fmt(value, decimals):
        return '' if value is None else f'{value:.{decimals}f}'

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    header = ['recipe', 'method', 'seeds', 'top1', 'top1_std', 'paper', 'paper_delta']
    writer.writerow(header + [k for c in DETAIL_COLUMNS for k in (c.key, f'{c.key}_std')])
    for recipe in recipes_of(table):
        for method in methods_of(table):
            if (recipe, method) not in table:
                continue
            row = table[recipe, method]
            top1 = row.stats['top1']
            figure = paper.get((recipe, method), (None,))[0]
            delta = None if figure is None or top1.mean is None else top1.mean - figure
            digits = TOP1.decimals + 2
            line = [recipe, method, row.seeds, fmt(top1.mean, digits), fmt(top1.std, digits),
                    fmt(figure, 2), fmt(delta, digits)]
            for c in DETAIL_COLUMNS:
                line += [fmt(row.stats[c.key].mean, c.decimals + 2),
                         fmt(row.stats[c.key].std, c.decimals + 2)]
            writer.writerow(line)
    return buf.getvalue()


# ------------------------------------------------------------------------------ the signal check


def parse_margins(text: str, known=tuple(BY_KEY), scale: float = 1.0) -> dict[str, float]:
    """``'top1=20,pgd_err=5,alignment=0.5'`` -> ``{'top1': 20.0, ...}``: each margin in the
    unit shown (percentage points, the ECE x100; alignment and uniformity unscaled), times
    ``scale``; ``known`` are the accepted columns."""
    margins = {}
    for item in filter(None, text.split(',')):
        column, sep, value = item.partition('=')
        try:
            margin = float(value)
        except ValueError:
            margin = math.nan
        if not sep or column not in known or not margin >= 0:
            raise SummaryError(f'--check-margin: expected COLUMN=POINTS with COLUMN one of '
                               f'{", ".join(known)}, got {item!r}')
        margins[column] = margin * scale
    return margins


def margin_failures(table: Table, margins: dict[str, float],
                    reference: str = 'untrained') -> list[str]:
    """One line per (recipe, row, column) whose mean does not beat the ``reference`` row's
    mean in that recipe by the margin: higher by it, or for a lower-is-better column
    (errors, ECE, alignment, uniformity) lower by it; exactly the margin passes. A missing
    value, in the row or the reference, fails; so does a recipe without a ``reference`` row."""
    lines = []
    for recipe in recipes_of(table):
        if (recipe, reference) not in table:
            lines.append(f'{recipe}: no {reference} row to compare with')
            continue
        ref_row = table[recipe, reference].stats
        for method in methods_of(table):
            if method == reference or (recipe, method) not in table:
                continue
            for key, margin in margins.items():
                column = BY_KEY[key]
                value, ref = table[recipe, method].stats[key].mean, ref_row[key].mean
                gain = None if value is None or ref is None else (
                    ref - value if column.lower_is_better else value - ref)
                if gain is None or gain < margin - 1e-9:  # a gain of exactly the margin passes
                    shown = [MISSING if v is None else f'{v:.{column.decimals}f}'
                             for v in (value, ref)]
                    unit = ' points' if column.limit is not None else ''
                    sense = ' (lower is better)' if column.lower_is_better else ''
                    lines.append(f'{recipe}: {method}: {key} {shown[0]} does not beat '
                                 f'{reference} {shown[1]} by {margin:g}{unit}{sense}')
    return lines
