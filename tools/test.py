#!/usr/bin/env python
"""Test (and evaluate) a detector: mmdet's ``tools/test.py`` that also prints the headline
metrics and writes them to ``<work_dir>/metrics.json`` (read by ``tools/summarize.py``)."""
from __future__ import annotations

import argparse
import logging
import os
import os.path as osp
import sys
from copy import deepcopy

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mmengine.config import ConfigDict  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

import mmtransfer  # noqa: E402,F401  (mmtransfer.compat first)
from mmtransfer.cli import (  # noqa: E402
    ArgumentParser,
    add_common_args,
    check_build_keys,
    check_input_file,
    output_file,
    run,
)
from mmtransfer.detection.metrics import (  # noqa: E402
    METRICS_FILE,
    coco_metrics_without_detections,
    format_metrics,
    numeric_metrics,
    write_metrics_json,
)
from mmtransfer.detection.runtime import (  # noqa: E402
    check_datasets,
    check_detector_checkpoint,
    check_image_files,
    configure_launcher,
    load_config,
    resolve_work_dir,
)

EPILOG = """\
example:
  python tools/test.py configs/faster_rcnn_voc.py work_dirs/voc_dense_distill/epoch_4.pth \\
      --work-dir work_dirs/voc_dense_distill
  # prints mAP and writes work_dirs/voc_dense_distill/metrics.json
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog='tools/test.py', description='MMDet test (and eval) a model',
                            epilog=EPILOG)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', type=output_file, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. If specified, it will be '
        'automatically saved to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip)')
    add_common_args(parser)  # --work-dir (where metrics.json goes), --cfg-options, --launcher
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
    check_input_file(args.checkpoint, 'checkpoint')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out}')
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


def test(argv: list[str] | None) -> dict[str, float]:
    """Run the test loop; print the metrics and write ``<work_dir>/metrics.json``."""
    from mmdet.evaluation import DumpDetResults
    from mmdet.registry import MODELS, RUNNERS
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.runner import Runner

    args = parse_args(argv)
    setup_cache_size_limit_of_dynamo()
    cfg = build_cfg(args)
    check_build_keys(cfg, loops=('test_cfg',))
    check_datasets(cfg, ('test',))
    if args.check_only:
        from mmengine.registry import init_default_scope

        init_default_scope(cfg.get('default_scope', 'mmdet'))
        check_detector_checkpoint(MODELS.build(cfg.model), args.checkpoint)
        return {}
    configure_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_image_files(runner.test_loop.dataloader.dataset, 'test')
    check_detector_checkpoint(runner.model, args.checkpoint)  # not a backbone, a random detector
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
    """Exit status: 0, or 2 with one line ``error: ...`` for bad input (see mmtransfer.cli)."""
    def command(args) -> None:
        test(args)  # the metrics are printed and saved; they are not an exit status

    return run(command, argv)


if __name__ == '__main__':
    sys.exit(main())
