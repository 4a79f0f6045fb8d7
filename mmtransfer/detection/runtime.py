"""Config handling and input checks shared by ``tools/train.py`` and ``tools/test.py``.

The config checks run before mmengine's ``Runner`` is built, so bad input (a missing config,
backbone file or dataset, a VOC object of an unknown class) stops the run with one line instead
of a traceback mid-way; :func:`check_image_files` runs on the datasets the Runner built, before
the first iteration. Missing files raise ``FileNotFoundError``, wrong content ``ValueError``:
``mmtransfer.cli.run`` prints either as ``error: <message>``.
"""
from __future__ import annotations

import os.path as osp
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from mmengine.config import Config, ConfigDict

from mmtransfer.detection.backbone_init import load_backbone_strict

STRICT_INIT = 'StrictPretrained'


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """``Config.fromfile`` plus ``--cfg-options``, with one-line errors (see
    :func:`mmtransfer.cli.read_config` and :func:`mmtransfer.cli.merge_cfg_options`)."""
    from mmtransfer.cli import merge_cfg_options, read_config

    cfg = read_config(path)
    merge_cfg_options(cfg, cfg_options)
    return cfg


def resolve_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """mmdet's rule: ``--work-dir`` > ``work_dir`` in the config > ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def configure_launcher(cfg: Config, launcher: str) -> None:
    """``--launcher``, also on a machine without CUDA (gloo process group, DDP on the CPU).

    DDP gets ``device_ids=None`` (the module's own device: the rank's GPU, or the CPU), unless
    the config has its own ``model_wrapper_cfg``.
    """
    import torch

    from mmtransfer.cli import init_cpu_distributed

    cfg.launcher = launcher
    if launcher == 'none':
        return
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.setdefault('model_wrapper_cfg', ConfigDict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    init_cpu_distributed(launcher)


# ---------------------------------------------------------------------------- backbone


def _init_cfgs(backbone_cfg: ConfigDict) -> list:
    init_cfg = backbone_cfg.get('init_cfg', None)
    if init_cfg is None:
        return []
    return list(init_cfg) if isinstance(init_cfg, list) else [init_cfg]


def strict_backbone_checkpoint(cfg: Config) -> str | None:
    """The file of the backbone's ``StrictPretrained`` initializer, or None (random init or
    another initializer)."""
    for init_cfg in _init_cfgs(cfg.model.backbone):
        if init_cfg.get('type') == STRICT_INIT:
            return init_cfg.get('checkpoint')
    return None


def set_backbone(cfg: Config, checkpoint: str | None) -> None:
    """Point the backbone at ``checkpoint`` (strict load), or make it a random-init backbone.

    Random init (``checkpoint=None``) trains *every* backbone layer with BatchNorm in train
    mode (``frozen_stages=-1, norm_eval=False``): mmdet's ``frozen_stages=1, norm_eval=True``
    assume pretrained weights and would keep a random stem and identity BN statistics fixed,
    which measures a crippled network rather than the absence of pretraining (He et al.,
    "Rethinking ImageNet Pre-training", 2019, train from-scratch detectors with all layers and
    normalisation trainable).
    """
    backbone = cfg.model.backbone
    if checkpoint is None:
        backbone.init_cfg = None
        backbone.frozen_stages = -1
        backbone.norm_eval = False
    else:
        backbone.init_cfg = ConfigDict(type=STRICT_INIT, checkpoint=checkpoint)
    cfg.backbone_checkpoint = checkpoint


def check_backbone(cfg: Config) -> None:
    """Fail fast: build the backbone alone (cheap) and load its file strictly, before the
    Runner builds datasets and the detector."""
    checkpoint = strict_backbone_checkpoint(cfg)
    if checkpoint is None:
        return
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    load_backbone_strict(MODELS.build(backbone_cfg), checkpoint)


def check_detector_checkpoint(detector, path: str) -> None:
    """Refuse a checkpoint that lacks weights of ``detector`` (an exported backbone, a
    pretraining checkpoint): mmengine would load what matches, leave the rest random and the
    test would score a random detector. Names the missing keys by module (``backbone.*``,
    ``rpn_head.*``, ...). Reads the file with the restricted checkpoint reader."""
    from mmtransfer.loading import load_checkpoint

    def plain(key: str) -> str:  # mmengine drops DDP's (and TTA's) "module." when loading
        return re.sub(r'^(module\.)+', '', key)

    ckpt = load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{path}: not a checkpoint (expected a dict with a "state_dict")')
    expected = {plain(k) for k in detector.state_dict()}
    missing = expected - {plain(k) for k in state}
    if missing:
        modules = sorted({k.split('.')[0] for k in missing})
        counts = ', '.join(f'{m}.* ({sum(k.startswith(m + ".") for k in missing)} of '
                           f'{sum(k.startswith(m + ".") for k in expected)})' for m in modules)
        raise ValueError(f'{path}: not a checkpoint of this detector: missing keys {counts}; '
                         'an exported backbone or a pretraining checkpoint? Test a checkpoint '
                         'written by tools/train.py')


# ---------------------------------------------------------------------------- datasets


def _dataset_cfgs(dataset_cfg: dict) -> Iterator[dict]:
    """Leaf dataset configs inside wrappers (RepeatDataset.dataset, ConcatDataset.datasets)."""
    if 'dataset' in dataset_cfg:
        yield from _dataset_cfgs(dataset_cfg['dataset'])
    elif 'datasets' in dataset_cfg:
        for child in dataset_cfg['datasets']:
            yield from _dataset_cfgs(child)
    else:
        yield dataset_cfg


def check_datasets(cfg: Config, splits: tuple[str, ...]) -> None:
    """Check the ``<split>_dataloader`` datasets of ``cfg`` (e.g. ``('train', 'val')``).

    Raises ``FileNotFoundError`` naming the first dataset root or annotation file that does not
    exist, and ``ValueError`` for a VOC object whose class is not in the dataset's classes
    (see :func:`check_voc_classes`).
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader', None)
        if not loader:
            continue
        for dataset in _dataset_cfgs(loader['dataset']):
            root = dataset.get('data_root', '') or ''
            if root and not osp.isdir(root):
                raise FileNotFoundError(
                    f'dataset root not found: {root} ({split}_dataloader, '
                    f'{dataset.get("type")}); put the data there or override it with '
                    '--cfg-options')
            ann_file = dataset.get('ann_file', '')
            if ann_file:
                ann_path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
                if not osp.isfile(ann_path):
                    raise FileNotFoundError(
                        f'annotation file not found: {ann_path} ({split}_dataloader)')
                check_voc_classes(dataset, ann_path, split)
        evaluators = cfg.get(f'{split}_evaluator', None) or []
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            ann_file = evaluator.get('ann_file', None)
            if ann_file and not osp.isfile(ann_file):
                raise FileNotFoundError(
                    f'annotation file not found: {ann_file} ({split}_evaluator)')


def check_voc_classes(dataset: dict, ann_path: str, split: str) -> None:
    """For an mmdet ``XMLDataset`` (``VOCDataset``) config: every object of every XML listed in
    ``ann_path`` must name one of the dataset's classes.

    mmdet's ``XMLDataset`` drops objects of other classes without a word, so a typo in a class
    name (or in ``metainfo.classes``) would train and evaluate on fewer objects. Reads each XML
    once (VOC07+12 trainval: 16,551 files, a few seconds); paths as ``XMLDataset`` builds them.
    """
    import mmdet.datasets  # noqa: F401  (registers the dataset types)
    from mmdet.datasets import XMLDataset
    from mmdet.registry import DATASETS

    dataset_type = DATASETS.get(dataset.get('type', ''))
    if not (isinstance(dataset_type, type) and issubclass(dataset_type, XMLDataset)):
        return
    classes = set((dataset.get('metainfo') or {}).get('classes')
                  or dataset_type.METAINFO.get('classes') or ())
    sub_root = (dataset.get('data_prefix') or {}).get('sub_data_root', '')
    ann_dir = osp.join(dataset.get('data_root', '') or '', sub_root,
                       dataset.get('ann_subdir', 'Annotations'))
    with open(ann_path) as f:
        image_ids = [line.strip() for line in f if line.strip()]
    for image_id in image_ids:
        xml_path = osp.join(ann_dir, f'{image_id}.xml')
        if not osp.isfile(xml_path):
            raise FileNotFoundError(f'{xml_path}: annotation file not found (listed in '
                                    f'{ann_path}, {split}_dataloader)')
        try:
            objects = ET.parse(xml_path).getroot().findall('object')
        except ET.ParseError as err:
            raise ValueError(f'{xml_path}: not valid XML: {err}') from None
        for obj in objects:
            name = obj.findtext('name')
            if name not in classes:
                raise ValueError(
                    f'{xml_path}: object class {name!r} is not one of the {len(classes)} '
                    f'classes of {split}_dataloader (metainfo.classes); mmdet would drop it '
                    'silently')


def _leaf_datasets(dataset) -> Iterator:
    """Built datasets inside wrappers (``RepeatDataset.dataset``, ``ConcatDataset.datasets``)."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from _leaf_datasets(child)
    elif hasattr(dataset, 'dataset'):
        yield from _leaf_datasets(dataset.dataset)
    else:
        yield dataset


def check_image_files(dataset, split: str) -> None:
    """Raise ``FileNotFoundError`` naming the first image of a built dataset that does not
    exist, and the annotation file (COCO JSON, VOC XML) that points at it.

    Runs on the data list mmdet built (after its filters), so only images that would be read
    are checked; one ``stat`` per image, no JSON parsed twice.
    """
    for leaf in _leaf_datasets(dataset):
        if not hasattr(leaf, 'get_data_info'):
            continue
        for index in range(len(leaf)):
            info = leaf.get_data_info(index)
            path = info.get('img_path')
            if not path or '://' in str(path) or osp.isfile(path):
                continue
            source = info.get('xml_path') or getattr(leaf, 'ann_file', '') or type(leaf).__name__
            raise FileNotFoundError(f'image not found: {path} (listed in {source}, '
                                    f'{split}_dataloader)')
