#!/usr/bin/env python
"""Summarise detection transfer runs, or classification runs, into tables (Markdown, CSV).

Detection (the default) reads ``ROOT/<method>/voc/metrics.json`` and
``ROOT/<method>/coco/metrics.json`` (flat JSON dicts written by tools/test.py with mmdet's metric
names, values in [0, 1]) and, when present, ``ROOT/<method>/eval/eval_metrics.json``
(tools/evaluate.py: clean top-1, FGSM / PGD top-1 error, ECE, OOD AUROC), and writes::

    PREFIX.md    caption line + table: method | VOC07 mAP | COCO AP | AP50 | AP75 [| top-1 |
                 FGSM err | PGD err | ECE | OOD AUROC]  (all in %, 1 decimal), and below it
                 the attack settings, which every evaluated run must share
    PREFIX.csv   the same numbers (empty cell where missing)
    PREFIX.png   grouped bars, method x detection metric
    PREFIX_robustness.png   (with eval metrics) one panel per metric: transfer beside
                 robustness, calibration and OOD detection

With several ROOTs (one per run, e.g. per seed) every cell is ``mean ± std`` over the runs.
A row whose pretraining mixed only after a warm start (``mix.start_iter`` N > 0, as in the CPU
demos) is named ``<method> (N warm steps)`` in PREFIX.md and on the plots (the CSV keeps the plain
method): the pretraining work dir is the folder of the checkpoint that
``ROOT/<method>/eval/eval_metrics.json`` names, and its dumped config gives N
(mmtransfer.run_info).
With ``--curves`` it also reads every mmengine ``<work_dir>/<timestamp>/vis_data/scalars.json``
under ROOT and writes ``PREFIX_curves.png`` (loss, lr and validation metric against iteration, one
line per run). Example::

    python tools/summarize.py work_dirs/transfer --out results/transfer --title "VOC/COCO" --curves

Classification (``--classification``, see mmtransfer.classification_table) reads
``ROOT/<recipe>/<method>/seed<N>/`` (``val_metrics.json`` of training, and when present
``eval/eval_metrics.json`` and ``embeddings/embeddings_metrics.json``) and writes::

    PREFIX.md    the paper's Table 1 layout: method x recipe, top-1 mean ± std over the seeds,
                 beside the paper's figure and ours − paper where its text states one; then,
                 with evaluations, one row per recipe x method: top-1, FGSM / PGD err, ECE, OOD
                 AUROC / AUPR / det. acc., alignment, uniformity, and the attack settings
    PREFIX.csv   one line per recipe x method: seeds, each column and its _std, paper,
                 paper_delta

Several ROOTs pool their runs. Example::

    python tools/summarize.py --classification work_dirs/cifar --out results/table1
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import textwrap
from pathlib import Path

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's mmtransfer
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from mmtransfer import classification_table, run_info  # noqa: E402
from mmtransfer.classification_table import (  # noqa: E402
    MISSING,
    SummaryError,
    describe_attacks,
    mean_std,
    read_json_object,
    shared_attack,
)
from mmtransfer.cli import ArgumentParser, check_output_path, run  # noqa: E402
from mmtransfer.fileio import write_atomic  # noqa: E402

METHOD_ORDER = ('random_init', 'baseline', 'mixup', 'cutmix', 'manifold_mixup', 'multimix',
                'dense', 'distill', 'dense_distill')
# (table header, CSV column, run sub-directory, metric name, factor to a fraction in [0, 1])
DETECTION_COLUMNS = (
    ('VOC07 mAP', 'voc07_mAP', 'voc', 'pascal_voc/mAP', 1.0),
    ('COCO AP', 'coco_AP', 'coco', 'coco/bbox_mAP', 1.0),
    ('AP50', 'coco_AP50', 'coco', 'coco/bbox_mAP_50', 1.0),
    ('AP75', 'coco_AP75', 'coco', 'coco/bbox_mAP_75', 1.0),
)
# tools/evaluate.py writes percentages, and the ECE as a fraction. Shown only when a run has them.
EVAL_COLUMNS = (
    ('top-1', 'top1', 'eval', 'top1', 0.01),
    ('FGSM err', 'fgsm_err', 'eval', 'fgsm_top1_error', 0.01),
    ('PGD err', 'pgd_err', 'eval', 'pgd_top1_error', 0.01),
    ('ECE', 'ece', 'eval', 'ece', 1.0),
    ('OOD AUROC', 'ood_auroc', 'eval', 'ood_auroc', 0.01),
)
COLUMNS = DETECTION_COLUMNS + EVAL_COLUMNS
FILES = dict(voc='voc/metrics.json', coco='coco/metrics.json', eval='eval/eval_metrics.json')
MISSING_NOTE = f'{MISSING}: no value (the metric is missing, or NaN).'
# Validation metrics, most wanted first, for the curves' third panel.
VAL_METRICS = ('pascal_voc/mAP', 'coco/bbox_mAP', 'accuracy/top1')
_BOOKKEEPING = {'step', 'iter', 'epoch', 'time', 'data_time', 'memory', 'lr', 'base_lr'}

Table = dict[str, dict[str, float | None]]  # method -> CSV column -> value in [0, 1] or None


# ------------------------------------------------------------------------------ the table


def ordered(methods) -> list[str]:
    """Methods in the paper's order; unknown names follow alphabetically."""
    known = [m for m in METHOD_ORDER if m in methods]
    return known + sorted(set(methods) - set(METHOD_ORDER))


def load_table(root: Path) -> Table:
    """Read every ``root/<method>/{voc,coco}/metrics.json`` (and ``eval/eval_metrics.json``);
    missing files or keys give None. Evaluation columns are in a row only when its run has an
    ``eval_metrics.json``."""
    if not root.is_dir():
        raise SummaryError(f'{root}: no such directory')
    table: Table = {}
    for method_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {source: method_dir / name for source, name in FILES.items()}
        if not any(f.is_file() for f in files.values()):
            continue
        metrics = {d: read_json_object(f) if f.is_file() else {} for d, f in files.items()}
        columns = DETECTION_COLUMNS + (EVAL_COLUMNS if files['eval'].is_file() else ())
        row = {}
        for _, column, source, key, factor in columns:
            value = classification_table.number(files[source], metrics[source], key)
            row[column] = None if value is None else factor * value
        table[method_dir.name] = row
    if not table:
        raise SummaryError(f'{root}: no runs found (expected <method>/voc/metrics.json or '
                           f'<method>/coco/metrics.json)')
    return table


def attack_protocol(roots: list[Path]) -> dict | None:
    """The attack settings (``eval_metrics.json``'s ``attack``) shared by every evaluated run
    under ``roots``; None without evaluations. Rows attacked differently are not comparable:
    a mismatch is an error naming both files."""
    paths = [p for root in roots for p in sorted(root.glob(f'*/{FILES["eval"]}'))]
    return shared_attack((p, read_json_object(p).get('attack', {})) for p in paths)


def columns_of(rows) -> tuple:
    """The columns to show for these table rows: detection always, evaluation when any row
    has it."""
    rows = list(rows)
    return tuple(c for c in COLUMNS if c in DETECTION_COLUMNS or any(c[1] in r for r in rows))


def combine(tables: list[Table]) -> tuple[Table, Table]:
    """Several runs per method (one table per run, e.g. per seed) -> (mean, std) tables.

    The std is the sample standard deviation over the runs that have the value (None with
    fewer than 2); the mean is over those runs (None with none).
    """
    mean: Table = {}
    std: Table = {}
    for method in {m for t in tables for m in t}:
        mean[method], std[method] = {}, {}
        for _, column, *_ in columns_of(t[method] for t in tables if method in t):
            values = [t[method][column] for t in tables
                      if method in t and t[method].get(column) is not None]
            mean[method][column], std[method][column] = mean_std(values)
    return mean, std


def _cell(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return MISSING
    return f'{100 * value:.1f}' + ('' if spread is None else f' ± {100 * spread:.1f}')


def format_markdown(table: Table, title: str | None = None, std: Table | None = None,
                    note: str | None = None, labels: dict[str, str] | None = None) -> str:
    """Markdown table (x100, one decimal); with ``std``, cells read ``mean ± std``; below it
    what an empty cell (``—``) means, when there is one, then ``note``. ``labels``: the name
    shown for a row (default: the method)."""
    columns = columns_of(table.values())
    lines = [title, ''] if title else []
    lines.append('| method | ' + ' | '.join(h for h, *_ in columns) + ' |')
    lines.append('|:--|' + '--:|' * len(columns))
    missing = False
    for method in ordered(table):
        cells = [_cell(table[method].get(c), std[method].get(c) if std else None)
                 for _, c, *_ in columns]
        missing |= MISSING in cells
        lines.append(f'| {(labels or {}).get(method, method)} | ' + ' | '.join(cells) + ' |')
    if missing:
        lines += ['', MISSING_NOTE]
    if note:
        lines += ['', note]
    return '\n'.join(lines) + '\n'


def format_csv(table: Table, std: Table | None = None) -> str:
    """CSV of the table, values x100 with one decimal, empty where missing; with ``std`` a
    ``<column>_std`` column after each column."""
    def number(v):
        return '' if v is None else f'{100 * v:.1f}'

    columns = columns_of(table.values())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    header = ['method']
    for _, c, *_ in columns:
        header += [c, f'{c}_std'] if std else [c]
    writer.writerow(header)
    for method in ordered(table):
        row = [method]
        for _, c, *_ in columns:
            row += [number(table[method].get(c))] + ([number(std[method].get(c))] if std else [])
        writer.writerow(row)
    return buf.getvalue()


def _bar_top(table: Table, std: Table | None, columns) -> float:
    """The highest bar end (x100) over ``columns``, error bar included; at least 1."""
    ends = [100 * (row[c] + ((std or {}).get(m, {}).get(c) or 0.0))
            for m, row in table.items() for c in columns if row.get(c) is not None]
    return max([1.0, *ends])


def plot_bars(table: Table, title: str | None = None, std: Table | None = None,
              labels: dict[str, str] | None = None) -> plt.Figure:
    """Grouped bars: one group per method, one bar per metric (x100); error bars = ``std``;
    ``labels``: the name shown for a row (default: the method)."""
    methods = ordered(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(methods) + 2), 4))
    width = 0.8 / len(DETECTION_COLUMNS)
    for k, (header, column, *_) in enumerate(DETECTION_COLUMNS):
        values = [table[m][column] for m in methods]
        xs = [i + (k - (len(DETECTION_COLUMNS) - 1) / 2) * width for i in range(len(methods))]
        heights = [math.nan if v is None else 100 * v for v in values]
        errors = None if std is None else [0.0 if std[m][column] is None else
                                           100 * std[m][column] for m in methods]
        bars = ax.bar(xs, heights, width, label=header, yerr=errors, capsize=2)
        ax.bar_label(bars, labels=['' if v is None else f'{100 * v:.1f}' for v in values],
                     fontsize=6, padding=1)
    ax.set_xticks(range(len(methods)), [(labels or {}).get(m, m) for m in methods], rotation=30,
                  ha='right')
    ax.set_ylabel('score (x100)')
    top = _bar_top(table, std, [c for _, c, *_ in DETECTION_COLUMNS])
    ax.set_ylim(0, top * 1.2)  # room for the labels and the legend above the bars
    ax.legend(fontsize=8, ncols=len(DETECTION_COLUMNS))
    if title:
        ax.set_title(textwrap.fill(title, 60), fontsize=9)  # wrapped: never clipped
    fig.tight_layout()
    return fig


# Panels of the robustness plot, by CSV column: transfer, then every evaluation column.
ROBUSTNESS_PANELS = ('voc07_mAP', 'coco_AP') + tuple(c for _, c, *_ in EVAL_COLUMNS)
LOWER_IS_BETTER = {'fgsm_err', 'pgd_err', 'ece'}


def plot_robustness(table: Table, title: str | None = None, std: Table | None = None,
                    labels: dict[str, str] | None = None) -> plt.Figure:
    """One small bar panel per metric (x100), methods on the x axis: transfer beside
    robustness, calibration and OOD detection. Methods without evaluation metrics show no bar
    in those panels."""
    methods = ordered(table)
    fig, axes = plt.subplots(1, len(ROBUSTNESS_PANELS),
                             figsize=(2.3 * len(ROBUSTNESS_PANELS), 3.6), squeeze=False)
    headers = {c: h for h, c, *_ in COLUMNS}
    for ax, column in zip(axes[0], ROBUSTNESS_PANELS, strict=True):
        label = headers[column] + (' (lower is better)' if column in LOWER_IS_BETTER else '')
        values = [table[m].get(column) for m in methods]
        errors = None if std is None else [100 * (std[m].get(column) or 0.0) for m in methods]
        bars = ax.bar(range(len(methods)), [math.nan if v is None else 100 * v for v in values],
                      yerr=errors, capsize=2, color=[f'C{i}' for i in range(len(methods))])
        ax.bar_label(bars, labels=['' if v is None else f'{100 * v:.1f}' for v in values],
                     fontsize=6, padding=1)
        ax.set_xticks(range(len(methods)), [(labels or {}).get(m, m) for m in methods],
                      rotation=45, ha='right', fontsize=7)
        ax.set_title(textwrap.fill(label, 18), fontsize=8)
        ax.set_ylim(0, _bar_top(table, std, [column]) * 1.2)
        ax.tick_params(axis='y', labelsize=7)
    if title:
        fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ row labels


def pretraining_dir(row_dir: Path) -> Path | None:
    """The pretraining work dir of a detection row: the folder of the checkpoint that
    ``row_dir/eval/eval_metrics.json`` names (tools/evaluate.py writes its absolute path), or
    None without one."""
    path = row_dir / FILES['eval']
    if not path.is_file():
        return None
    try:
        checkpoint = read_json_object(path).get('checkpoint')
    except SummaryError:
        return None
    return Path(checkpoint).parent if isinstance(checkpoint, str) and checkpoint else None


def row_labels(roots: list[Path], methods) -> dict[str, str]:
    """Method -> the name its row is shown with: ``<method> (N warm steps)`` when its
    pretraining (in any ROOT) mixed only from step N > 0, else the method."""
    labels = {}
    for method in methods:
        steps = []
        for root in roots:
            work_dir = pretraining_dir(root / method)
            steps.append(None if work_dir is None else run_info.warm_steps(work_dir))
        labels[method] = run_info.row_label(method, steps)
    return labels


# ------------------------------------------------------------------------------ the signal check


def parse_margins(text: str) -> dict[str, float]:
    """``'voc07_mAP=10,coco_AP=5'`` (points x100) -> ``{'voc07_mAP': 0.10, 'coco_AP': 0.05}``."""
    known = sorted(c for _, c, *_ in DETECTION_COLUMNS)
    return classification_table.parse_margins(text, known, scale=1 / 100)


def margin_failures(table: Table, margins: dict[str, float],
                    reference: str = 'random_init') -> list[tuple[str | None, str]]:
    """``(row, line)`` per (row, column) where a row does not beat ``reference`` by the margin;
    ``(None, line)`` when there is no reference row.

    A missing value, in the row or in the reference, fails too: a check that cannot be made is
    not passed.
    """
    if reference not in table:
        return [(None, f'no {reference} row to compare with')]
    lines = []
    for method in ordered(table):
        if method == reference:
            continue
        for column, margin in margins.items():
            value, ref = table[method][column], table[reference][column]
            if value is None or ref is None or value - ref < margin:
                shown = ('—' if value is None else f'{100 * value:.1f}',
                         '—' if ref is None else f'{100 * ref:.1f}')
                lines.append((method, f'{method}: {column} {shown[0]} does not beat '
                                      f'{reference} {shown[1]} by {100 * margin:g} points'))
    return lines


# ------------------------------------------------------------------------------ training curves


def find_logs(root: Path) -> dict[str, Path]:
    """Run name (work dir relative to ``root``) -> its mmengine ``scalars.json``.

    A work dir with several timestamped logs (e.g. a later test run) uses the newest one that
    has training lines.
    """
    by_run: dict[str, list[Path]] = {}
    for path in sorted(root.rglob('vis_data/scalars.json')):
        work_dir = path.parent.parent.parent
        name = str(work_dir.relative_to(root)) if work_dir != root else root.name
        by_run.setdefault(name, []).append(path)
    logs = {}
    for name, paths in by_run.items():
        with_train = [p for p in paths if parse_scalars(p)['train_step']]
        logs[name] = (with_train or paths)[-1]
    rank = {m: i for i, m in enumerate(ordered({Path(n).parts[0] for n in logs}))}
    return dict(sorted(logs.items(), key=lambda kv: (rank[Path(kv[0]).parts[0]], kv[0])))


def parse_scalars(path: Path) -> dict:
    """Parse mmengine's JSON-lines scalar log.

    Train lines are those with a ``loss`` key (x = their global ``step``); any other line is a
    validation line, placed at the step of the last train line before it (its own ``step`` is
    the epoch in epoch-based runs).

    Returns:
        dict with lists ``train_step``, ``loss``, ``lr``, ``val_step``, ``val`` (the value of
        ``val_metric``) and ``val_metric`` (name or None).
    """
    out = dict(train_step=[], loss=[], lr=[], val_step=[], val=[], val_metric=None)
    val_rows = []
    last_step = None
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise SummaryError(f'{path}: cannot read ({err})') from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise SummaryError(f'{path}:{number}: not a JSON line ({err})') from err
        if not isinstance(row, dict):
            raise SummaryError(f'{path}:{number}: expected a JSON object')
        if 'loss' in row:
            last_step = row.get('step', len(out['train_step']) + 1)
            out['train_step'].append(last_step)
            out['loss'].append(row['loss'])
            out['lr'].append(row.get('lr', math.nan))
        else:
            val_rows.append((row.get('step', 0) if last_step is None else last_step, row))
    names = {k for _, row in val_rows for k, v in row.items()
             if k not in _BOOKKEEPING and isinstance(v, int | float)}
    metric = next((m for m in VAL_METRICS if m in names), min(names, default=None))
    if metric is not None:
        for step, row in val_rows:
            if metric in row:
                out['val_step'].append(step)
                out['val'].append(row[metric])
    out['val_metric'] = metric
    return out


def plot_curves(curves: dict[str, dict], title: str | None = None,
                labels: dict[str, str] | None = None) -> plt.Figure:
    """Panels against iteration: training loss, learning rate and, when any run was validated
    during training, the validation metric (no empty panel otherwise). A run is named by its
    path under ROOT, its first part (the method) shown as ``labels`` gives it."""
    validated = any(c['val_metric'] and c['val'] for c in curves.values())
    panels = ('training loss', 'learning rate') + (('validation metric',) if validated else ())
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for run_name, c in curves.items():
        method, *rest = Path(run_name).parts
        name = '/'.join([(labels or {}).get(method, method), *rest])
        axes[0].plot(c['train_step'], c['loss'], label=name, linewidth=1)
        axes[1].plot(c['train_step'], c['lr'], label=name, linewidth=1)
        if validated and c['val_metric']:
            axes[2].plot(c['val_step'], c['val'], marker='o', markersize=3,
                         label=f"{name} ({c['val_metric']})")
    for ax, label in zip(axes, panels, strict=True):
        ax.set_title(label)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if validated:
        axes[2].legend(fontsize=7)
    if title:
        fig.suptitle(textwrap.fill(title, 110))
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ output


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format='png', dpi=120)
    finally:
        plt.close(fig)
    return buf.getvalue()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    lower = ', '.join(c.key for c in classification_table.COLUMNS if c.lower_is_better)
    parser = ArgumentParser(
        prog='tools/summarize.py', description=__doc__.split('\n')[0],
        epilog='examples:\n  python tools/summarize.py work_dirs/demo/det --out '
               'work_dirs/demo/results --curves\n  python tools/summarize.py --classification '
               'work_dirs/cifar --out results/table1 --check-margin top1=20,ood_auroc=10')
    parser.add_argument('root', type=Path, nargs='+',
                        help='directory holding <method>/{voc,coco,eval}/; several (e.g. one '
                             'per seed) give mean ± std over them. With --classification: '
                             'holding <recipe>/<method>/seed<N>/; several pool their runs')
    parser.add_argument('--classification', action='store_true',
                        help='summarise classification runs into the paper\'s Table 1 layout '
                             '(PREFIX.md, PREFIX.csv) instead of detection transfer runs')
    parser.add_argument('--out', type=Path, required=True,
                        help='output prefix: writes PREFIX.md, PREFIX.csv, PREFIX.png '
                             '(--classification: PREFIX.md, PREFIX.csv)')
    parser.add_argument('--title', default=None, help='caption line of the table and plots')
    parser.add_argument('--check-margin', metavar='COLUMN=POINTS,...',
                        help='after writing, exit 1 unless every row beats the --reference row '
                             'by these margins; one line per miss. A missing value fails. '
                             'Detection: x100, e.g. voc07_mAP=10,coco_AP=5. --classification: '
                             'per recipe, COLUMN one of the CSV\'s ('
                             f'{", ".join(classification_table.BY_KEY)}), POINTS in the unit '
                             'shown (percentage points, the ECE x100; alignment and uniformity '
                             'unscaled), e.g. top1=20,ood_auroc=10; a row passes when row - '
                             f'reference >= POINTS, or, for the lower-is-better {lower}, when '
                             'reference - row >= POINTS')
    parser.add_argument('--reference', metavar='ROW', default=None,
                        help='the row --check-margin compares with (default: random_init; '
                             'with --classification: untrained)')
    parser.add_argument('--required-rows', metavar='ROW,...',
                        help='with --check-margin: only these rows fail the run (error: lines); '
                             'a miss of any other row is printed as a warning: line '
                             '(default: every row is required; detection only)')
    parser.add_argument('--curves', action='store_true',
                        help='also plot training curves from vis_data/scalars.json to '
                             'PREFIX_curves.png (detection only)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    return parser.parse_args(argv)


def _write_all(prefix: Path, outputs: dict[str, bytes]) -> None:
    """``PREFIX<suffix>`` for each output: every path checked before any is written."""
    paths = {prefix.with_name(prefix.name + suffix): data for suffix, data in outputs.items()}
    for path in paths:
        check_output_path(path)
    for path, data in paths.items():
        write_atomic(path, lambda f, data=data: f.write(data))


def summarize_classification(args: argparse.Namespace) -> int:
    """``--classification``: PREFIX.md and PREFIX.csv from ROOT/<recipe>/<method>/seed<N>/."""
    for flag in ('curves', 'required_rows'):
        if getattr(args, flag) not in (None, False):
            raise SummaryError(f'--{flag.replace("_", "-")} is for detection runs, not '
                               f'--classification')
    margins = (classification_table.parse_margins(args.check_margin) if args.check_margin
               else None)
    runs, attack = classification_table.load_runs(args.root)
    table = classification_table.combine(runs)
    warm = classification_table.warm_starts(args.root)
    markdown = classification_table.format_markdown(table, args.title, attack, warm=warm)
    _write_all(args.out, {'.md': markdown.encode('utf-8'),
                          '.csv': classification_table.format_csv(table).encode('utf-8')})
    print(markdown, end='')
    failures = (classification_table.margin_failures(table, margins, args.reference or 'untrained')
                if margins else [])
    for line in failures:
        print(f'error: {line}', file=sys.stderr)
    return 1 if failures else 0


def summarize(argv: list[str] | None) -> int:
    """Reads every input and renders every output before writing any: bad input writes
    nothing (exit 2); a margin miss exits 1 after writing."""
    args = parse_args(argv)
    if args.classification:
        return summarize_classification(args)
    prefix: Path = args.out
    margins = parse_margins(args.check_margin) if args.check_margin else None
    tables = [load_table(root) for root in args.root]
    attack = attack_protocol(args.root)
    table, std = combine(tables) if len(tables) > 1 else (tables[0], None)
    required = set(filter(None, (args.required_rows or '').split(','))) or set(table)
    if args.required_rows is not None and not margins:
        raise SummaryError('--required-rows needs --check-margin')
    if unknown := sorted(required - set(table)):
        raise SummaryError(f'--required-rows: no row {", ".join(unknown)} in the table '
                           f'(rows: {", ".join(ordered(table))})')
    curves = None
    if args.curves:
        logs = find_logs(args.root[0])
        if not logs:
            raise SummaryError(f'{args.root[0]}: no vis_data/scalars.json found for --curves')
        curves = {name: parse_scalars(path) for name, path in logs.items()}
    title = args.title
    if std is not None:
        title = f'{title or "Transfer"} (mean ± std over {len(tables)} runs)'
    attacks = describe_attacks(attack) if attack else ''
    note = f'Attacks (pixel space): {attacks}.' if attacks else None
    labels = row_labels(args.root, table)
    markdown = format_markdown(table, title, std, note, labels)
    outputs = {'.md': markdown.encode('utf-8'), '.csv': format_csv(table, std).encode('utf-8'),
               '.png': _png(plot_bars(table, title, std, labels))}
    if any(c in EVAL_COLUMNS for c in columns_of(table.values())):
        outputs['_robustness.png'] = _png(plot_robustness(table, title, std, labels))
    if curves is not None:
        outputs['_curves.png'] = _png(plot_curves(curves, args.title, labels))
    _write_all(prefix, outputs)
    print(markdown, end='')
    failures = margin_failures(table, margins, args.reference or 'random_init') if margins else []
    fatal = False
    for row, line in failures:
        fails_run = row is None or row in required
        fatal |= fails_run
        print(f'{"error" if fails_run else "warning"}: {line}', file=sys.stderr)
    return 1 if fatal else 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0; 1 when a row misses ``--check-margin``; 2 with one line ``error: ...``
    for bad input (see mmtransfer.cli). Detection by default, ``--classification`` for the
    paper's Table 1."""
    return run(summarize, argv)


if __name__ == '__main__':
    sys.exit(main())
