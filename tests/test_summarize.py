"""tools/summarize.py: the comparison table and the training curves from run directories."""
import csv
import importlib.util
import json
import os
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('summarize', REPO / 'tools' / 'summarize.py')
summarize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summarize)

VOC = {'baseline': 0.6134, 'multimix': 0.6649, 'zz_custom': 0.5}
COCO = {'random_init': (0.1012, 0.2241, 0.0786), 'baseline': (0.2968, 0.5012, 0.3049)}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / 'runs'
    for method, value in VOC.items():
        _write_json(root / method / 'voc' / 'metrics.json',
                    {'pascal_voc/mAP': value, 'pascal_voc/AP50': value})
    for method, (ap, ap50, ap75) in COCO.items():
        _write_json(root / method / 'coco' / 'metrics.json',
                    {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap50, 'coco/bbox_mAP_75': ap75,
                     'coco/bbox_mAP_s': -1.0, 'coco/bbox_mAP_m': 0.2, 'coco/bbox_mAP_l': -1.0})
    (root / 'not_a_run' / 'voc').mkdir(parents=True)  # no metrics.json: ignored
    return root


def _table_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith('|')]
    return [[c.strip() for c in line.strip('|').split('|')] for line in rows]


def test_table_markdown_csv_and_plot(runs, tmp_path, capsys):
    prefix = tmp_path / 'out' / 'transfer'
    old_umask = os.umask(0o022)
    try:
        assert summarize.main([str(runs), '--out', str(prefix), '--title',
                               'Transfer on demo']) == 0
    finally:
        os.umask(old_umask)
    for suffix in ('.md', '.csv', '.png'):  # readable by the team, as a plain write would be
        assert (tmp_path / 'out' / f'transfer{suffix}').stat().st_mode & 0o777 == 0o644
    markdown = (tmp_path / 'out' / 'transfer.md').read_text()
    assert capsys.readouterr().out == markdown
    assert markdown.splitlines()[0] == 'Transfer on demo'
    rows = _table_rows(markdown)
    assert rows[0] == ['method', 'VOC07 mAP', 'COCO AP', 'AP50', 'AP75']
    assert rows[2:] == [
        ['random_init', '—', '10.1', '22.4', '7.9'],
        ['baseline', '61.3', '29.7', '50.1', '30.5'],
        ['multimix', '66.5', '—', '—', '—'],
        ['zz_custom', '50.0', '—', '—', '—'],
    ]
    with open(tmp_path / 'out' / 'transfer.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [r['method'] for r in table] == ['random_init', 'baseline', 'multimix', 'zz_custom']
    assert table[1] == dict(method='baseline', voc07_mAP='61.3', coco_AP='29.7', coco_AP50='50.1',
                            coco_AP75='30.5')
    assert table[0]['voc07_mAP'] == '' and table[2]['coco_AP'] == ''
    with Image.open(tmp_path / 'out' / 'transfer.png') as im:
        assert im.format == 'PNG' and min(im.size) > 100
    # nothing but the three outputs (no temporary files left behind)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'transfer.csv', 'transfer.md', 'transfer.png']


def test_load_table_values(runs):
    table = summarize.load_table(runs)
    assert table['baseline'] == dict(voc07_mAP=0.6134, coco_AP=0.2968, coco_AP50=0.5012,
                                     coco_AP75=0.3049)
    assert table['multimix']['coco_AP'] is None
    assert 'not_a_run' not in table


def test_order_follows_the_paper_then_alphabetical():
    names = ['zeta', 'dense_distill', 'mixup', 'alpha', 'random_init', 'multimix', 'baseline']
    assert summarize.ordered(names) == ['random_init', 'baseline', 'mixup', 'multimix',
                                        'dense_distill', 'alpha', 'zeta']


@pytest.mark.parametrize('case', ['missing', 'empty', 'bad_json', 'not_a_number'])
def test_errors_are_one_line_exit_2(tmp_path, capsys, case):
    root = tmp_path / 'root'
    expected = str(root)
    if case == 'empty':
        root.mkdir()
    elif case == 'bad_json':
        (root / 'baseline' / 'voc').mkdir(parents=True)
        (root / 'baseline' / 'voc' / 'metrics.json').write_text('{"pascal_voc/mAP": ')
        expected = str(root / 'baseline' / 'voc' / 'metrics.json')
    elif case == 'not_a_number':
        _write_json(root / 'baseline' / 'coco' / 'metrics.json', {'coco/bbox_mAP': 'high'})
        expected = 'coco/bbox_mAP'
    prefix = tmp_path / 'out' / 'table'
    assert summarize.main([str(root), '--out', str(prefix)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and expected in err
    assert not (tmp_path / 'out').exists()


# ------------------------------------------------------------------------------ curves


def _scalars(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))


def _epoch_based_log(iters_per_epoch=4, epochs=3, interval=2):
    """Lines as mmengine's LoggerHook writes them: val lines carry the epoch as ``step``."""
    lines = []
    for epoch in range(1, epochs + 1):
        for i in range(interval, iters_per_epoch + 1, interval):
            step = (epoch - 1) * iters_per_epoch + i
            lines.append(dict(lr=0.02 * step / 12, data_time=0.01, loss=2.0 / step,
                              loss_cls=1.0 / step, loss_bbox=1.0 / step, time=0.2,
                              epoch=epoch, iter=step, memory=512, step=step))
        lines.append({'pascal_voc/mAP': 0.1 * epoch, 'pascal_voc/AP50': 0.1 * epoch,
                      'data_time': 0.01, 'time': 0.1, 'step': epoch})
    return lines


def test_parse_scalars_places_val_at_last_train_step(tmp_path):
    path = tmp_path / 'scalars.json'
    _scalars(path, _epoch_based_log())
    curves = summarize.parse_scalars(path)
    assert curves['train_step'] == [2, 4, 6, 8, 10, 12]
    assert curves['loss'] == pytest.approx([2.0 / s for s in (2, 4, 6, 8, 10, 12)])
    assert curves['lr'] == pytest.approx([0.02 * s / 12 for s in (2, 4, 6, 8, 10, 12)])
    assert curves['val_metric'] == 'pascal_voc/mAP'
    assert curves['val_step'] == [4, 8, 12]
    assert curves['val'] == pytest.approx([0.1, 0.2, 0.3])


def test_parse_scalars_picks_other_metrics_and_reports_bad_lines(tmp_path):
    path = tmp_path / 'scalars.json'
    _scalars(path, [dict(loss=1.0, lr=0.1, step=5), {'accuracy/top1': 42.0, 'step': 1}])
    assert summarize.parse_scalars(path)['val_metric'] == 'accuracy/top1'
    path.write_text('{"loss": 1.0, "step": 1}\n{"loss": \n')
    with pytest.raises(summarize.SummaryError, match=r'scalars\.json:2'):
        summarize.parse_scalars(path)


def test_curves_from_run_tree(runs, tmp_path):
    train_log = runs / 'baseline' / 'voc' / '20260101_000000' / 'vis_data' / 'scalars.json'
    _scalars(train_log, _epoch_based_log())
    # a later test-only run in the same work dir: no training lines, must not win
    _scalars(runs / 'baseline' / 'voc' / '20260102_000000' / 'vis_data' / 'scalars.json',
             [{'pascal_voc/mAP': 0.61, 'step': 0}])
    _scalars(runs / 'multimix' / 'coco' / '20260101_000000' / 'vis_data' / 'scalars.json',
             [dict(loss=1.5, lr=0.01, iter=100, step=100), {'coco/bbox_mAP': 0.2, 'step': 100}])
    logs = summarize.find_logs(runs)
    assert logs == {'baseline/voc': train_log,
                    'multimix/coco': runs / 'multimix/coco/20260101_000000/vis_data/scalars.json'}
    prefix = tmp_path / 'res'
    assert summarize.main([str(runs), '--out', str(prefix), '--curves']) == 0
    with Image.open(tmp_path / 'res_curves.png') as im:
        assert im.format == 'PNG' and im.size[0] > im.size[1]


def test_curves_without_logs_is_an_error(runs, tmp_path, capsys):
    assert summarize.main([str(runs), '--out', str(tmp_path / 'res'), '--curves']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(runs) in err and 'scalars.json' in err


def test_curves_drop_the_validation_panel_when_nothing_was_validated():
    train_only = dict(train_step=[1, 2], loss=[2.0, 1.0], lr=[0.1, 0.1], val_step=[], val=[],
                      val_metric=None)
    validated = dict(train_only, val_step=[2], val=[0.3], val_metric='pascal_voc/mAP')
    assert len(summarize.plot_curves({'a': train_only}).axes) == 2
    assert len(summarize.plot_curves({'a': train_only, 'b': validated}).axes) == 3


def test_a_long_title_is_wrapped_inside_the_figure(runs):
    title = 'Embedded synthetic demo data, 2-core CPU (not ImageNet/VOC/COCO), ' * 2
    fig = summarize.plot_bars(summarize.load_table(runs), title)
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width


def test_several_runs_give_mean_and_sample_std(runs, tmp_path, capsys):
    """Two seeds: baseline VOC 61.34 and 65.34 -> 63.3 ± 2.8 (sample std sqrt(8)/100 * 100)."""
    second = tmp_path / 'seed1'
    _write_json(second / 'baseline' / 'voc' / 'metrics.json', {'pascal_voc/mAP': 0.6534})
    prefix = tmp_path / 'two'
    assert summarize.main([str(runs), str(second), '--out', str(prefix)]) == 0
    rows = {r[0]: r for r in _table_rows((tmp_path / 'two.md').read_text())}
    assert rows['baseline'][1] == '63.3 ± 2.8'
    assert rows['multimix'][1] == '66.5'                     # one run: no spread
    assert rows['baseline'][2] == '29.7'                     # COCO only in the first run
    with open(tmp_path / 'two.csv', newline='') as f:
        baseline = next(r for r in csv.DictReader(f) if r['method'] == 'baseline')
    assert baseline['voc07_mAP'] == '63.3' and baseline['voc07_mAP_std'] == '2.8'
    assert 'mean ± std over 2 runs' in (tmp_path / 'two.md').read_text().splitlines()[0]


EVAL = dict(top1=87.5, top5=99.0, fgsm_top1_error=40.25, pgd_top1_error=61.0, ece=0.0312,
            ood_auroc=72.44, ood_aupr=80.0, ood_detection_accuracy=66.0)


def test_evaluation_metrics_join_the_table_and_get_their_own_plot(runs, tmp_path):
    _write_json(runs / 'baseline' / 'eval' / 'eval_metrics.json', EVAL)
    prefix = tmp_path / 'out' / 't'
    assert summarize.main([str(runs), '--out', str(prefix)]) == 0
    rows = _table_rows((tmp_path / 'out' / 't.md').read_text())
    assert rows[0] == ['method', 'VOC07 mAP', 'COCO AP', 'AP50', 'AP75', 'top-1', 'FGSM err',
                       'PGD err', 'ECE', 'OOD AUROC']
    by_method = {r[0]: r for r in rows[2:]}
    # percentages as written by tools/evaluate.py; the ECE fraction 0.0312 shown as 3.1 %
    assert by_method['baseline'][1:] == ['61.3', '29.7', '50.1', '30.5', '87.5', '40.2', '61.0',
                                         '3.1', '72.4']
    assert by_method['random_init'][5:] == ['—'] * 5          # no eval for this run
    with open(tmp_path / 'out' / 't.csv', newline='') as f:
        baseline = next(r for r in csv.DictReader(f) if r['method'] == 'baseline')
    assert baseline['ece'] == '3.1' and baseline['ood_auroc'] == '72.4'
    with Image.open(tmp_path / 'out' / 't_robustness.png') as im:
        assert im.format == 'PNG' and im.size[0] > im.size[1] > 100


def test_evaluation_metrics_mean_and_std_over_runs(runs, tmp_path):
    """FGSM error 40.25 and 44.25 over two runs: 42.2 ± 2.8."""
    _write_json(runs / 'baseline' / 'eval' / 'eval_metrics.json', EVAL)
    second = tmp_path / 'seed1'
    _write_json(second / 'baseline' / 'eval' / 'eval_metrics.json',
                dict(EVAL, fgsm_top1_error=44.25))  # a run with evaluation only
    assert summarize.main([str(runs), str(second), '--out', str(tmp_path / 'two')]) == 0
    rows = {r[0]: r for r in _table_rows((tmp_path / 'two.md').read_text())}
    assert rows['baseline'][6] == '42.2 ± 2.8' and rows['baseline'][5] == '87.5 ± 0.0'
    assert rows['baseline'][1] == '61.3'                     # VOC only in the first run


ATTACK = dict(fgsm_eps=8 / 255, pgd_eps=4 / 255, pgd_step=2 / 255, pgd_iters=20)


def test_the_attack_protocol_is_stated_below_the_table(runs, tmp_path):
    _write_json(runs / 'baseline' / 'eval' / 'eval_metrics.json', dict(EVAL, attack=ATTACK))
    assert summarize.main([str(runs), '--out', str(tmp_path / 't')]) == 0
    assert (tmp_path / 't.md').read_text().endswith(
        '\nAttacks (pixel space): FGSM eps 8/255; PGD eps 4/255, 20 steps of 2/255.\n')


def test_runs_attacked_differently_are_an_error(runs, tmp_path, capsys):
    _write_json(runs / 'baseline' / 'eval' / 'eval_metrics.json', dict(EVAL, attack=ATTACK))
    second = tmp_path / 'seed1'
    _write_json(second / 'baseline' / 'eval' / 'eval_metrics.json',
                dict(EVAL, attack=dict(ATTACK, pgd_iters=10)))
    assert summarize.main([str(runs), str(second), '--out', str(tmp_path / 'two')]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f'error: {second}/baseline/eval')
    assert "'pgd_iters': 10" in err and not (tmp_path / 'two.md').exists()


@pytest.mark.parametrize('text', ['Infinity', '1e999', '-Infinity'])
def test_an_infinite_metric_is_an_error_and_nothing_is_written(runs, tmp_path, capsys, text):
    """Infinity used to reach the plot, after the .md and .csv were written."""
    path = runs / 'baseline' / 'voc' / 'metrics.json'
    path.write_text(f'{{"pascal_voc/mAP": {text}}}')
    assert summarize.main([str(runs), '--out', str(tmp_path / 'out' / 't')]) == 2
    err = capsys.readouterr().err
    assert err == f'error: {path}: pascal_voc/mAP is not finite: {float(text)!r}\n'
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('attack, needle', [
    ('fgsm 8/255', "\"attack\" is not an object of attack settings: 'fgsm 8/255'"),
    (dict(ATTACK, pgd_eps='4/255'), "attack.pgd_eps is not a finite number: '4/255'"),
    (dict(fgsm_eps=0.03, pgd_eps=0.01), 'attack has pgd_eps without pgd_step and pgd_iters'),
])
def test_a_malformed_attack_record_is_an_error_and_nothing_is_written(runs, tmp_path, capsys,
                                                                       attack, needle):
    path = runs / 'baseline' / 'eval' / 'eval_metrics.json'
    _write_json(path, dict(EVAL, attack=attack))
    assert summarize.main([str(runs), '--out', str(tmp_path / 'out' / 't')]) == 2
    err = capsys.readouterr().err
    assert err == f'error: {path}: {needle}\n'
    assert not (tmp_path / 'out').exists()


def test_an_output_that_is_a_directory_is_an_error_and_nothing_is_written(runs, tmp_path,
                                                                           capsys):
    (tmp_path / 't.png').mkdir()
    assert summarize.main([str(runs), '--out', str(tmp_path / 't')]) == 2
    assert capsys.readouterr().err == f'error: {tmp_path / "t.png"}: is a directory, not a file\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['runs', 't.png']


def test_the_footnote_says_what_an_empty_cell_means(runs, tmp_path):
    _write_json(runs / 'baseline' / 'voc' / 'metrics.json', {'pascal_voc/mAP': float('nan')})
    assert summarize.main([str(runs), '--out', str(tmp_path / 'a')]) == 0
    markdown = (tmp_path / 'a.md').read_text()
    assert {r[0]: r for r in _table_rows(markdown)}['baseline'][1] == '—'  # NaN
    assert markdown.endswith('\n\n—: no value (the metric is missing, or NaN).\n')
    full = tmp_path / 'full'
    for method in ('random_init', 'baseline'):
        _write_json(full / method / 'voc' / 'metrics.json', {'pascal_voc/mAP': 0.5})
        _write_json(full / method / 'coco' / 'metrics.json',
                    {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'coco/bbox_mAP_75': 0.3})
    assert summarize.main([str(full), '--out', str(tmp_path / 'b')]) == 0
    assert '—' not in (tmp_path / 'b.md').read_text()


@pytest.mark.parametrize('argv', [[], ['runs'], ['runs', '--out', 'x', '--bogus']])
def test_a_bad_command_line_is_one_line(capsys, argv):
    assert summarize.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'usage' not in err


def test_plots_keep_the_error_bars_inside_the_axes():
    """ECE 6.7 ± 2.2 (the demo's two seeds): the axis must reach past 8.9, not stop at 8."""
    table = {'baseline': dict(voc07_mAP=0.2, coco_AP=0.1, coco_AP50=0.2, coco_AP75=0.1,
                              ece=0.067)}
    std = {'baseline': dict(voc07_mAP=0.1, coco_AP=0.0, coco_AP50=0.0, coco_AP75=0.0,
                            ece=0.022)}
    fig = summarize.plot_robustness(table, std=std)
    panels = dict(zip(summarize.ROBUSTNESS_PANELS, fig.axes, strict=True))
    assert panels['ece'].get_ylim()[1] > 8.9 and panels['voc07_mAP'].get_ylim()[1] > 30
    assert summarize.plot_bars(table, std=std).axes[0].get_ylim()[1] > 30


def test_no_robustness_plot_without_evaluation(runs, tmp_path):
    assert summarize.main([str(runs), '--out', str(tmp_path / 't')]) == 0
    assert not (tmp_path / 't_robustness.png').exists()


def test_check_margin_names_each_row_that_does_not_beat_random_init(runs, tmp_path, capsys):
    # baseline COCO AP 29.7 vs random_init 10.1: +19.6 points; multimix has no COCO AP at all.
    assert summarize.main([str(runs), '--out', str(tmp_path / 'a'),
                           '--check-margin', 'coco_AP=19']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'error: multimix: coco_AP — does not beat random_init 10.1 by 19 points',
        'error: zz_custom: coco_AP — does not beat random_init 10.1 by 19 points']
    assert (tmp_path / 'a.md').is_file()  # the table is still written
    _write_json(runs / 'multimix' / 'coco' / 'metrics.json', {'coco/bbox_mAP': 0.30})
    _write_json(runs / 'zz_custom' / 'coco' / 'metrics.json', {'coco/bbox_mAP': 0.2913})
    assert summarize.main([str(runs), '--out', str(tmp_path / 'b'),
                           '--check-margin', 'coco_AP=19']) == 0
    assert summarize.main([str(runs), '--out', str(tmp_path / 'c'),
                           '--check-margin', 'coco_AP=19.7']) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: baseline: coco_AP 29.7 does not beat random_init 10.1 by 19.7 points',
        'error: zz_custom: coco_AP 29.1 does not beat random_init 10.1 by 19.7 points']


@pytest.mark.parametrize('spec', ['coco_AP', 'top1=3', 'voc07_mAP=-1', 'voc07_mAP=x'])
def test_check_margin_rejects_bad_specs(runs, tmp_path, capsys, spec):
    assert summarize.main([str(runs), '--out', str(tmp_path / 'o'), '--check-margin', spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --check-margin:') and '\n' not in err
    assert not list(tmp_path.glob('o*'))


def test_required_rows_fail_the_run_and_the_others_warn(runs, tmp_path, capsys):
    # baseline +19.6 COCO AP points over random_init, multimix none: a margin of 19 fails only
    # multimix, which is not required here.
    out = str(tmp_path / 'r')
    assert summarize.main([str(runs), '--out', out, '--check-margin', 'coco_AP=19',
                           '--required-rows', 'baseline']) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'warning: multimix: coco_AP — does not beat random_init 10.1 by 19 points',
        'warning: zz_custom: coco_AP — does not beat random_init 10.1 by 19 points']
    assert summarize.main([str(runs), '--out', out, '--check-margin', 'coco_AP=19',
                           '--required-rows', 'baseline,multimix']) == 1
    assert capsys.readouterr().err.strip().splitlines()[0].startswith('error: multimix:')


def test_required_rows_must_be_in_the_table(runs, tmp_path, capsys):
    assert summarize.main([str(runs), '--out', str(tmp_path / 'o'), '--check-margin',
                           'coco_AP=1', '--required-rows', 'dense_distill']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --required-rows: no row dense_distill') and '\n' not in err
    assert not list(tmp_path.glob('o*'))


def _pretraining(work_dir: Path, method: str, start_iter: int) -> Path:
    """A pretraining work dir as mmengine leaves it: the dumped config beside the checkpoint."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / f'{method}.py').write_text(
        "model = dict(\n    arch='resnet18',\n    mix=dict(\n        alpha=(\n            0.5,\n"
        f"            2.0,\n        ),\n        method='{method}',\n        n=256,\n"
        f"        start_iter={start_iter}),\n    type='MixPretrainer')\nwork_dir = '{work_dir}'\n")
    return work_dir / 'epoch_8.pth'


def test_a_warm_started_row_is_named_so_in_the_table_and_on_the_plots(runs, tmp_path):
    """issue 28: a row whose pretraining mixed only from step 500 reads
    'multimix (500 warm steps)'; baseline (never mixes) keeps its name; the CSV keeps keys."""
    pre = tmp_path / 'pretrain'
    _write_json(runs / 'multimix' / 'eval' / 'eval_metrics.json',
                dict(EVAL, checkpoint=str(_pretraining(pre / 'multimix', 'multimix', 500))))
    _write_json(runs / 'baseline' / 'eval' / 'eval_metrics.json',
                dict(EVAL, checkpoint=str(_pretraining(pre / 'baseline', 'baseline', 500))))
    _scalars(runs / 'multimix' / 'voc' / '20260101_000000' / 'vis_data' / 'scalars.json',
             [dict(loss=1.5, lr=0.01, step=1), dict(loss=1.0, lr=0.01, step=2)])
    assert summarize.main([str(runs), '--out', str(tmp_path / 't'), '--curves']) == 0
    names = [r[0] for r in _table_rows((tmp_path / 't.md').read_text())[2:]]
    assert names == ['random_init', 'baseline', 'multimix (500 warm steps)', 'zz_custom']
    with open(tmp_path / 't.csv', newline='') as f:
        assert [r['method'] for r in csv.DictReader(f)] == ['random_init', 'baseline',
                                                            'multimix', 'zz_custom']
    table = summarize.load_table(runs)
    labels = summarize.row_labels([runs], table)
    assert labels == {'random_init': 'random_init', 'baseline': 'baseline',
                      'multimix': 'multimix (500 warm steps)', 'zz_custom': 'zz_custom'}
    for fig in (summarize.plot_bars(table, None, None, labels),
                summarize.plot_robustness(table, None, None, labels)):
        ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert ticks == ['random_init', 'baseline', 'multimix (500 warm steps)', 'zz_custom']
    curve = dict(train_step=[1], loss=[1.0], lr=[0.1], val_step=[], val=[], val_metric=None)
    fig = summarize.plot_curves({'multimix/voc': curve}, None, labels)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        'multimix (500 warm steps)/voc']


def test_warm_steps_of_several_runs_and_of_unreadable_configs(runs, tmp_path):
    """Seeds that disagree are all named; a config that is not plain literals is unknown and is
    never run."""
    from mmtransfer import run_info
    assert run_info.row_label('m', [500, None]) == 'm (500 warm steps)'
    assert run_info.row_label('m', [0, 500]) == 'm (0, 500 warm steps)'
    assert run_info.row_label('m', [0, None]) == 'm' and run_info.row_label('m', []) == 'm'
    pre = tmp_path / 'pre'
    assert run_info.warm_steps(pre) is None                          # no such folder
    _pretraining(pre, 'dense_distill', 0)
    assert run_info.warm_steps(pre) == 0
    marker = tmp_path / 'ran'
    (pre / 'dense_distill.py').write_text(
        f"model = dict(mix=dict(method='dense', start_iter=__import__('pathlib').Path("
        f"'{marker}').touch() or 5))\n")
    assert run_info.warm_steps(pre) is None and not marker.exists()
    second = tmp_path / 'seed1'
    _write_json(second / 'multimix' / 'voc' / 'metrics.json', {'pascal_voc/mAP': 0.6})
    _write_json(second / 'multimix' / 'eval' / 'eval_metrics.json',
                dict(EVAL, checkpoint=str(_pretraining(tmp_path / 'p1', 'multimix', 300))))
    _write_json(runs / 'multimix' / 'eval' / 'eval_metrics.json',
                dict(EVAL, checkpoint=str(_pretraining(tmp_path / 'p0', 'multimix', 500))))
    assert summarize.row_labels([runs, second], ['multimix', 'random_init']) == {
        'multimix': 'multimix (300, 500 warm steps)', 'random_init': 'random_init'}
