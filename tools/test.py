"""Test (and evaluate) a detector: mmdet's ``tools/test.py`` that also prints the headline
metrics and writes them to ``<work_dir>/metrics.json`` (read by ``tools/summarize.py``)."""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
from copy import deepcopy

from mmengine.config import ConfigDict, DictAction
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import Runner

import mmtransfer  # noqa: F401  (applies mmtransfer.compat)
from mmtransfer.detection.metrics import (
    METRICS_FILE,
    coco_metrics_without_detections,
    format_metrics,
    numeric_metrics,
    write_metrics_json,
)
from mmtransfer.detection.runtime import (
    UsageError,
    check_datasets,
    load_config,
    resolve_work_dir,
    run_cli,
)

EPILOG = """\
example:
  python tools/test.py configs/faster_rcnn_voc.py work_dirs/voc_dense_distill/epoch_4.pth \\
      --work-dir work_dirs/voc_dense_distill
  # prints mAP and writes work_dirs/voc_dense_distill/metrics.json
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='MMDet test (and eval) a model', epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics (metrics.json)')
    parser.add_argument(
        '--out', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. If specified, it will be '
        'automatically saved to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy '
        'format will be merged into config file. If the value to be overwritten is a list, '
        'it should be like key="[a,b]" or key=a,b It also allows nested list/tuple values, '
        'e.g. key="[(a,b),(c,d)]" Note that the quotation marks are necessary and that no '
        'white space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip)')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show tracebacks for errors')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_flip_tta(cfg) -> None:
    """mmdet's default test-time augmentation (horizontal flip), unless the config has one."""
    cfg.setdefault('tta_model', ConfigDict(
        type='DetTTAModel',
        tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
    if 'tta_pipeline' not in cfg:
        test_data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in test_data_cfg:
            test_data_cfg = test_data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                [dict(type='PackDetInputs',
                      meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                 'scale_factor', 'flip', 'flip_direction'))],
            ])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def build_cfg(args: argparse.Namespace):
    """The config as mmdet's test.py builds it."""
    if not osp.isfile(args.checkpoint):
        raise UsageError(f'checkpoint not found: {args.checkpoint}')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise UsageError(f'--out must be a .pkl or .pickle file, got {args.out}')
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    resolve_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook

        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        add_flip_tta(cfg)
    return cfg


def _score_empty_results(runner) -> dict[str, float]:
    """Metrics of a test run whose detector found nothing (mmdet's CocoMetric returns {})."""
    from mmdet.evaluation import CocoMetric

    metrics = {}
    for metric in runner.test_evaluator.metrics:
        if isinstance(metric, CocoMetric) and metric.metrics == ['bbox'] \
                and metric.img_ids is not None:
            print_log('no detection above the score threshold on the whole test set: '
                      'scoring the empty result set with pycocotools', logger='current',
                      level=logging.WARNING)
            metrics.update(coco_metrics_without_detections(metric))
    return metrics


def test(args: argparse.Namespace) -> dict[str, float]:
    """Run the test loop; print the metrics and write ``<work_dir>/metrics.json``."""
    from mmdet.evaluation import DumpDetResults
    from mmdet.registry import RUNNERS
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    check_datasets(cfg, ('test',))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    metrics = numeric_metrics(runner.test())
    if is_main_process():
        if not metrics:
            metrics = _score_empty_results(runner)
        path = osp.join(cfg.work_dir, METRICS_FILE)
        write_metrics_json(path, metrics)
        print(format_metrics(metrics), f'\nmetrics written to {path}', sep='', flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return run_cli(test, parse_args(argv))

if __name__ == '__main__':
    sys.exit(main())
