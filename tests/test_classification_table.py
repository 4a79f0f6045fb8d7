"""tools/summarize.py --classification: the paper's Table 1 layout from classification runs."""
import csv
import importlib.util
import json
from pathlib import Path

import pytest

from mmtransfer import classification_table
from mmtransfer.paper_figures import PAPER_TOP1

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('summarize', REPO / 'tools' / 'summarize.py')
summarize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summarize)

R18 = 'cifar100_preactresnet18'
WRN = 'cifar10_wrn16_8'
ATTACK = dict(fgsm_eps=8 / 255, pgd_eps=4 / 255, pgd_step=2 / 255, pgd_iters=20,
              space='pixels in [0, 1], before normalisation')


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _val(root: Path, recipe: str, method: str, seed: int, top1) -> Path:
    path = root / recipe / method / f'seed{seed}' / 'val_metrics.json'
    _write_json(path, {'accuracy/top1': top1, 'accuracy/top5': 99.0, 'epoch': 10, 'iter': 390})
    return path


def _eval(root: Path, recipe: str, method: str, seed: int, **metrics) -> Path:
    path = root / recipe / method / f'seed{seed}' / 'eval' / 'eval_metrics.json'
    _write_json(path, dict(dict(top1=50.0, top5=90.0, attack=ATTACK), **metrics))
    return path


def _embeddings(root: Path, recipe: str, method: str, seed: int, alignment, uniformity) -> Path:
    path = root / recipe / method / f'seed{seed}' / 'embeddings' / 'embeddings_metrics.json'
    _write_json(path, dict(alignment=alignment, uniformity=uniformity, num_images=100))
    return path


# Two seeds per cell (top-1 %), hand-chosen: means and sample stds are easy to check.
TOP1 = {
    (R18, 'untrained'): (1.0, 3.0),         # 2.0 ± 1.4
    (R18, 'baseline'): (75.0, 77.0),        # 76.0 ± 1.4, paper 76.76 -> -0.8
    (R18, 'dense_distill'): (80.0, 82.0),   # 81.0 ± 1.4, paper 82.52 -> -1.5
    (R18, 'zz_extra'): (50.0, 50.0),        # 50.0 ± 0.0
    (WRN, 'baseline'): (90.0, 94.0),        # 92.0 ± 2.8, no paper figure for this recipe
}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / 'runs'
    for (recipe, method), values in TOP1.items():
        for seed, top1 in enumerate(values):
            _val(root, recipe, method, seed, top1)
    (root / R18 / 'baseline' / 'seed9' / 'eval').mkdir(parents=True)  # no file: ignored
    (root / R18 / 'baseline' / 'notes').mkdir()                        # not seed*: ignored
    return root


def _rows(markdown: str) -> list[list[str]]:
    """The cells of every Markdown table line (both tables, in order)."""
    rows = [line for line in markdown.splitlines() if line.startswith('|')]
    return [[c.strip() for c in line.strip('|').split('|')] for line in rows]


def _csv(path: Path) -> list[dict]:
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_the_table1_layout_beside_the_paper(runs, tmp_path, capsys):
    prefix = tmp_path / 'out' / 'table1'
    assert summarize.main(['--classification', str(runs), '--out', str(prefix),
                           '--title', 'Table 1']) == 0
    markdown = (tmp_path / 'out' / 'table1.md').read_text()
    assert capsys.readouterr().out == markdown
    assert markdown.splitlines()[0] == 'Table 1: top-1 accuracy (%), mean ± std over 2 seeds'
    assert _rows(markdown) == [
        ['method', WRN, R18, 'paper', 'Δ'],                 # the paper's column order
        [':--', '--:', '--:', '--:', '--:'],
        ['untrained', '—', '2.0 ± 1.4', '—', '—'],
        ['baseline', '92.0 ± 2.8', '76.0 ± 1.4', '76.76', '-0.8'],
        ['dense_distill', '—', '81.0 ± 1.4', '82.52', '-1.5'],
        ['zz_extra', '—', '50.0 ± 0.0', '—', '—'],
    ]
    notes = markdown.split('\n\n')[2:]
    assert notes[0].startswith('—: no value (no run of the cell has it, or it is NaN); in the '
                               'paper and Δ columns, the paper\'s text states no figure')
    assert notes[1] == ('top-1: the last validation of each run (the paper is silent on last '
                        'vs best).')
    assert notes[2].startswith('paper: top-1 quoted from the text of Venkataramanan')
    assert f'{R18} dense_distill 82.52: sec. 4.4, α ablation' in notes[2]
    assert 'Table 9 discussion' in notes[2] and 'distill 82.28' not in notes[2]  # no such row
    assert 'robustness' not in markdown                        # no eval or embeddings runs
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['table1.csv', 'table1.md']


def test_the_csv_has_one_line_per_recipe_and_method(runs, tmp_path):
    assert summarize.main(['--classification', str(runs), '--out', str(tmp_path / 't')]) == 0
    table = _csv(tmp_path / 't.csv')
    assert [(r['recipe'], r['method']) for r in table] == [
        (WRN, 'baseline'), (R18, 'untrained'), (R18, 'baseline'), (R18, 'dense_distill'),
        (R18, 'zz_extra')]
    dense = table[3]
    assert (dense['seeds'], dense['top1'], dense['top1_std'], dense['paper'],
            dense['paper_delta']) == ('2', '81.000', '1.414', '82.52', '-1.520')
    assert table[1]['paper'] == table[1]['paper_delta'] == ''      # untrained: no figure
    assert table[0]['pgd_err'] == table[0]['alignment_std'] == ''  # no evaluation
    assert list(table[0])[:7] == ['recipe', 'method', 'seeds', 'top1', 'top1_std', 'paper',
                                  'paper_delta']


def test_seed_counts_are_named_per_cell_when_they_differ(runs, tmp_path):
    _val(runs, WRN, 'multimix', 0, 60.0)   # one seed: the mean alone
    assert summarize.main(['--classification', str(runs), '--out', str(tmp_path / 't')]) == 0
    markdown = (tmp_path / 't.md').read_text()
    assert markdown.splitlines()[0] == ('Image classification: top-1 accuracy (%), '
                                        'mean ± std (seeds)')
    rows = {r[0]: r for r in _rows(markdown)}
    assert rows['multimix'][1] == '60.0 (1)' and rows['baseline'][1] == '92.0 ± 2.8 (2)'
    assert rows['dense_distill'][2:] == ['81.0 ± 1.4 (2)', '82.52', '-1.5']
    assert next(r for r in _csv(tmp_path / 't.csv') if r['method'] == 'multimix')['seeds'] == '1'


def test_several_roots_pool_their_seeds(tmp_path):
    first, second = tmp_path / 'a', tmp_path / 'b'
    _val(first, R18, 'dense_distill', 0, 80.0)
    _val(second, R18, 'dense_distill', 1, 82.0)
    assert summarize.main(['--classification', str(first), str(second), '--out',
                           str(tmp_path / 't')]) == 0
    assert _rows((tmp_path / 't.md').read_text())[2] == ['dense_distill', '81.0 ± 1.4', '82.52',
                                                        '-1.5']


def test_the_second_table_robustness_calibration_ood_and_embeddings(runs, tmp_path):
    for seed, (fgsm, align) in enumerate([(40.0, 0.9234), (44.0, 0.9434)]):
        _eval(runs, R18, 'dense_distill', seed, fgsm_top1_error=fgsm, pgd_top1_error=61.0,
              ece=0.0312, ood_auroc=72.44, ood_aupr=80.0, ood_detection_accuracy=66.0)
        _embeddings(runs, R18, 'dense_distill', seed, align, -2.5)
    _eval(runs, R18, 'untrained', 0, top1=1.0, fgsm_top1_error=99.0, pgd_top1_error=99.0,
          ece=0.5, ood_auroc=50.0, ood_aupr=50.0, ood_detection_accuracy=50.0)
    assert summarize.main(['--classification', str(runs), '--out', str(tmp_path / 't')]) == 0
    markdown = (tmp_path / 't.md').read_text()
    second = markdown[markdown.index('Image classification: robustness'):]
    assert second.splitlines()[0].endswith(', mean ± std (seeds)')
    rows = _rows(second)
    assert rows[0] == ['recipe', 'method', 'top-1', 'FGSM err', 'PGD err', 'ECE (×100)',
                       'OOD AUROC', 'OOD AUPR', 'OOD det. acc.', 'alignment', 'uniformity']
    assert rows[2:] == [  # every row of the evaluated recipe, none of the other one
        [R18, 'untrained', '1.0 (1)', '99.0 (1)', '99.0 (1)', '50.0 (1)', '50.0 (1)',
         '50.0 (1)', '50.0 (1)', '—', '—'],
        [R18, 'baseline'] + ['—'] * 9,
        [R18, 'dense_distill', '50.0 ± 0.0 (2)', '42.0 ± 2.8 (2)', '61.0 ± 0.0 (2)',
         '3.1 ± 0.0 (2)', '72.4 ± 0.0 (2)', '80.0 ± 0.0 (2)', '66.0 ± 0.0 (2)',
         '0.93 ± 0.01 (2)', '-2.50 ± 0.00 (2)'],
        [R18, 'zz_extra'] + ['—'] * 9,
    ]
    assert 'Lower is better: FGSM err, PGD err, ECE (×100), alignment, uniformity.' in second
    assert second.endswith('\n\nAttacks (pixel space): FGSM eps 8/255; PGD eps 4/255, 20 '
                           'steps of 2/255.\n')
    dense = next(r for r in _csv(tmp_path / 't.csv') if r['method'] == 'dense_distill')
    assert (dense['ece'], dense['fgsm_err_std'], dense['alignment'], dense['uniformity']) == (
        '3.120', '2.828', '0.9334', '-2.5000')


def test_the_second_table_shows_only_the_columns_some_run_has(runs, tmp_path):
    _embeddings(runs, WRN, 'baseline', 0, 1.5, -3.25)
    assert summarize.main(['--classification', str(runs), '--out', str(tmp_path / 't')]) == 0
    markdown = (tmp_path / 't.md').read_text()
    second = markdown[markdown.index('Image classification: robustness'):]
    assert second.splitlines()[0].endswith(', 1 seed')  # one seed everywhere: said once
    rows = _rows(second)
    assert rows[0] == ['recipe', 'method', 'alignment', 'uniformity']
    assert rows[2:] == [[WRN, 'baseline', '1.50', '-3.25']]
    assert 'Attacks' not in markdown


# ------------------------------------------------------------------------------ the margin check


def _margin(runs, tmp_path, capsys, *flags):
    code = summarize.main(['--classification', str(runs), '--out', str(tmp_path / 'm'),
                           *flags])
    assert (tmp_path / 'm.md').is_file() and (tmp_path / 'm.csv').is_file()  # written anyway
    return code, capsys.readouterr().err.splitlines()


def test_check_margin_passes_when_every_row_beats_the_reference(runs, tmp_path, capsys):
    # R18: untrained 2.0; the weakest row, zz_extra, 50.0: +48 points. WRN has no untrained.
    code, err = _margin(runs, tmp_path, capsys, '--check-margin', 'top1=48')
    assert code == 1 and err == [f'error: {WRN}: no untrained row to compare with']
    _val(runs, WRN, 'untrained', 0, 44.0)
    assert _margin(runs, tmp_path, capsys, '--check-margin', 'top1=48') == (0, [])


def test_check_margin_names_each_miss(runs, tmp_path, capsys):
    # against zz_extra 50.0: untrained -48, baseline +26, dense_distill +31; no OOD values.
    code, err = _margin(runs, tmp_path, capsys, '--check-margin', 'top1=30,ood_auroc=5',
                        '--reference', 'zz_extra')
    assert code == 1 and err == [
        f'error: {WRN}: no zz_extra row to compare with',
        f'error: {R18}: untrained: top1 2.0 does not beat zz_extra 50.0 by 30 points',
        f'error: {R18}: untrained: ood_auroc — does not beat zz_extra — by 5 points',
        f'error: {R18}: baseline: top1 76.0 does not beat zz_extra 50.0 by 30 points',
        f'error: {R18}: baseline: ood_auroc — does not beat zz_extra — by 5 points',
        f'error: {R18}: dense_distill: ood_auroc — does not beat zz_extra — by 5 points']


def test_lower_is_better_columns_must_be_below_the_reference(tmp_path, capsys):
    root = tmp_path / 'runs'
    for method, pgd, ece, align in [('untrained', 90.0, 0.30, 2.0),
                                    ('baseline', 80.0, 0.10, 1.6),    # -10, -20, -0.4
                                    ('multimix', 89.0, 0.25, 1.0)]:   # -1, -5, -1.0
        _eval(root, R18, method, 0, pgd_top1_error=pgd, ece=ece)
        _embeddings(root, R18, method, 0, align, -1.0)
    code, err = _margin(root, tmp_path, capsys, '--check-margin',
                        'pgd_err=5,ece=10,alignment=0.5')
    assert code == 1 and err == [
        f'error: {R18}: baseline: alignment 1.60 does not beat untrained 2.00 by 0.5 '
        '(lower is better)',
        f'error: {R18}: multimix: pgd_err 89.0 does not beat untrained 90.0 by 5 points '
        '(lower is better)',
        f'error: {R18}: multimix: ece 25.0 does not beat untrained 30.0 by 10 points '
        '(lower is better)']
    # exactly the margin passes (2.0 - 1.6 is 0.3999... in floating point)
    assert _margin(root, tmp_path, capsys, '--check-margin', 'pgd_err=1,ece=5,alignment=0.4',
                   '--reference', 'untrained') == (0, [])


def test_the_help_states_the_sign_rule(capsys):
    assert summarize.main(['--help']) == 0
    out = ' '.join(capsys.readouterr().out.split())
    assert 'row - reference >= POINTS' in out and 'reference - row >= POINTS' in out
    assert 'fgsm_err, pgd_err, ece, alignment, uniformity' in out


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize('case', ['malformed', 'not_a_number', 'infinite', 'ece_in_percent',
                                  'empty_root', 'no_root', 'attacks_differ', 'root_twice',
                                  'bad_margin', 'curves'])
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, case):
    roots, flags = [runs], []
    if case == 'malformed':
        path = _val(runs, R18, 'mixup', 0, 1.0)
        path.write_text('{"accuracy/top1": ')
        expected = f'{path}: not a readable JSON file'
    elif case == 'not_a_number':
        path = _val(runs, R18, 'mixup', 0, '76.2')
        expected = f"{path}: accuracy/top1 is not a number: '76.2'"
    elif case == 'infinite':
        path = _eval(runs, R18, 'mixup', 0)
        path.write_text('{"top1": 50, "pgd_top1_error": Infinity}')
        expected = f'{path}: pgd_top1_error is not finite: inf'
    elif case == 'ece_in_percent':
        path = _eval(runs, R18, 'mixup', 0, ece=3.1)
        expected = f'{path}: ece is not a fraction in [0, 1]: 3.1'
    elif case == 'empty_root':
        roots = [tmp_path / 'empty']
        (roots[0] / R18 / 'baseline').mkdir(parents=True)
        expected = (f'{roots[0]}: no runs found (expected <recipe>/<method>/seed<N>/ holding '
                    'val_metrics.json')
    elif case == 'no_root':
        roots = [tmp_path / 'nowhere']
        expected = f'{roots[0]}: no such directory'
    elif case == 'attacks_differ':
        _eval(runs, R18, 'baseline', 0)
        path = _eval(runs, WRN, 'baseline', 1, attack=dict(ATTACK, pgd_iters=10))
        expected = f"{path}: attack settings {{'fgsm_eps'"
    elif case == 'root_twice':
        roots = [runs, runs]
        expected = f'{runs / R18 / "baseline" / "seed0"}: {R18}/baseline/seed0 is also under'
    elif case == 'bad_margin':
        flags = ['--check-margin', 'voc07_mAP=10']
        expected = '--check-margin: expected COLUMN=POINTS with COLUMN one of top1, eval_top1'
    else:
        flags = ['--curves']
        expected = '--curves is for detection runs, not --classification'
    out = tmp_path / 'out' / 't'
    assert summarize.main(['--classification', *map(str, roots), '--out', str(out),
                           *flags]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'error: {expected}'), err
    assert not (tmp_path / 'out').exists()


# ------------------------------------------------------------------------------ the modules


def test_the_paper_figures_are_the_four_quoted_settings():
    assert {cell: figure for cell, (figure, _) in PAPER_TOP1.items()} == {
        (R18, 'baseline'): 76.76, (R18, 'manifold_mixup'): 80.20, (R18, 'distill'): 82.28,
        (R18, 'dense_distill'): 82.52}
    assert all(source for _, source in PAPER_TOP1.values())


def test_combine_gives_mean_sample_std_and_counts():
    table = classification_table.combine({
        (R18, 'mixup'): [dict(top1=80.0, alignment=1.0), dict(top1=82.0), dict(top1=84.0)]})
    row = table[R18, 'mixup']
    assert row.seeds == 3 and row.stats['top1'] == (82.0, 2.0, 3)
    assert row.stats['alignment'] == (1.0, None, 1) and row.stats['ece'] == (None, None, 0)


def test_the_detection_mode_is_unchanged(tmp_path, capsys):
    root = tmp_path / 'det'
    _write_json(root / 'random_init' / 'voc' / 'metrics.json', {'pascal_voc/mAP': 0.25})
    _write_json(root / 'baseline' / 'voc' / 'metrics.json', {'pascal_voc/mAP': 0.6134})
    _write_json(root / 'baseline' / 'coco' / 'metrics.json', {
        'coco/bbox_mAP': 0.2968, 'coco/bbox_mAP_50': 0.5012, 'coco/bbox_mAP_75': 0.3049})
    assert summarize.main([str(root), '--out', str(tmp_path / 'd'), '--title', 'T',
                           '--check-margin', 'voc07_mAP=30']) == 0
    assert (tmp_path / 'd.md').read_text() == (
        'T\n\n| method | VOC07 mAP | COCO AP | AP50 | AP75 |\n|:--|--:|--:|--:|--:|\n'
        '| random_init | 25.0 | — | — | — |\n| baseline | 61.3 | 29.7 | 50.1 | 30.5 |\n\n'
        '—: no value (the metric is missing, or NaN).\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['d.csv', 'd.md', 'd.png', 'det']
    assert capsys.readouterr().err == ''


def test_a_warm_started_method_is_named_so(runs, tmp_path):
    """issue 28: seed folders whose dumped config has mix.start_iter=124 (the CPU demo's warm
    start) name the row 'dense_distill (124 warm steps)' in both tables; baseline and the CSV
    keep their names."""
    for seed in (0, 1):
        for method, start in (('dense_distill', 124), ('baseline', 124)):
            (runs / R18 / method / f'seed{seed}' / 'cfg.py').write_text(
                f"model = dict(mix=dict(method='{method}', start_iter={start}))\n")
        _eval(runs, R18, 'dense_distill', seed, pgd_top1_error=60.0)
    prefix = tmp_path / 't'
    assert summarize.main(['--classification', str(runs), '--out', str(prefix)]) == 0
    rows = _rows((tmp_path / 't.md').read_text())
    main = [r[0] for r in rows if r[0] not in ('method', ':--', 'recipe')]
    assert 'dense_distill (124 warm steps)' in main and 'baseline' in main
    detail = [r[:2] for r in rows if r[0] == R18]
    assert [R18, 'dense_distill (124 warm steps)'] in detail and [R18, 'baseline'] in detail
    assert {r['method'] for r in _csv(tmp_path / 't.csv')} == {'untrained', 'baseline',
                                                               'dense_distill', 'zz_extra'}
