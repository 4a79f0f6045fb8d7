"""The checks of ``tools/gpu_check.py``: is this machine ready to pretrain and transfer?

Pure functions over the library, each returning a JSON-ready dict:

* :func:`environment` - versions, devices, how mmcv was compiled;
* :func:`mmcv_ops_agree` - mmcv ``nms`` and ``RoIAlign`` on the device against the CPU;
* :func:`probe_method` - a few real training steps of one method at the given shapes, under
  autocast: images/s, peak memory, finite losses;
* :func:`ddp_ranks_identical` - ``dense_distill`` under DDP in 2 processes: students and EMA
  teachers must end bit-identical on every rank.
"""
from __future__ import annotations

import os
import platform
import socket
import time

import torch

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'off': None}


def environment() -> dict:
    import mmcv
    import mmdet
    import mmengine
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version

    cuda = torch.cuda.is_available()
    return dict(
        python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None, mmcv=mmcv.__version__,
        mmcv_cuda=get_compiling_cuda_version(), mmcv_compiler=get_compiler_version(),
        mmengine=mmengine.__version__, mmdet=mmdet.__version__, cpus=os.cpu_count(),
        gpus=[dict(name=torch.cuda.get_device_name(i),
                   capability='.'.join(map(str, torch.cuda.get_device_capability(i))),
                   memory_gib=round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1))
              for i in range(torch.cuda.device_count())] if cuda else [],
        # not every torch build exposes the driver's CUDA version (2.11 and 2.13 do not)
        driver_cuda=getattr(torch._C, '_cuda_getDriverVersion', lambda: None)() if cuda else None)


def mmcv_ops_agree(device: str) -> dict:
    """``nms`` and ``RoIAlign`` on ``device`` against the CPU, on random boxes and features."""
    from mmcv.ops import RoIAlign, nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 30], 1)
    scores = torch.rand(200, generator=g)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_dev = nms(boxes.to(device), scores.to(device), 0.5)
    features = torch.randn(2, 8, 32, 32, generator=g)
    rois = torch.cat([torch.randint(0, 2, (16, 1), generator=g).float(), boxes[:16] / 4], 1)
    align = RoIAlign((7, 7), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    out_cpu = align(features, rois)
    out_dev = align(features.to(device), rois.to(device)).cpu()
    return dict(device=device, nms_equal=bool(torch.equal(keep_cpu, keep_dev.cpu())),
                nms_kept=int(keep_cpu.numel()),
                roi_align_max_abs_diff=float((out_cpu - out_dev).abs().max()))


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def probe_method(method: str, *, device: str, amp: str, arch: str, size: int, m: int, n: int,
                 classes: int, steps: int, warmup: int = 1, seed: int = 0) -> dict:
    """Train ``method`` for ``warmup + steps`` steps on one synthetic in-memory batch.

    The model is the config's (``configs/pretrain/<method>.py`` mixing options, here with
    ``n``), SGD as in the paper's recipe, channels_last on CUDA, autocast ``amp`` (``bf16`` /
    ``fp16`` / ``off``; fp16 with a dynamic loss scale). Returns images/s over the timed steps,
    the peak memory (CUDA) and whether every loss was finite.
    """
    from mmengine.optim import build_optim_wrapper

    from mmtransfer.models import METHODS, MixPretrainer

    dev = torch.device(device)
    torch.manual_seed(seed)
    distill = METHODS[method][2]
    channels_last = dev.type == 'cuda'
    model = MixPretrainer(arch=arch, num_classes=classes, channels_last=channels_last,
                          mix=dict(method=method, n=n),
                          data_preprocessor=dict(type='MultiViewDataPreprocessor',
                                                 channels_last=channels_last)).to(dev).train()
    optim = dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
    dtype = AMP_DTYPES[amp]
    use_amp_wrapper = dtype is not None and dev.type == 'cuda'
    if use_amp_wrapper:
        optim.update(type='AmpOptimWrapper', dtype=str(dtype).split('.')[-1],
                     loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, optim)
    g = torch.Generator().manual_seed(seed)
    batch = dict(inputs=torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8, generator=g),
                 labels=torch.randint(0, classes, (m,), generator=g))
    if distill:
        batch['inputs2'] = torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8,
                                         generator=g)
    finite, times = True, []
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    for step in range(warmup + steps):
        _sync(dev)
        start = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype or torch.float32,
                            enabled=dtype is not None and not use_amp_wrapper):
            log = model.train_step(batch, optim_wrapper)
        if distill:
            model.update_teacher()
        _sync(dev)
        if step >= warmup:
            times.append(time.perf_counter() - start)
        finite &= all(bool(torch.isfinite(torch.as_tensor(v))) for v in log.values())
    median = sorted(times)[len(times) // 2]
    return dict(method=method, amp=amp, step_ms=round(median * 1e3, 2),
                img_per_s=round(m / median, 1), finite=finite,
                peak_mem_mib=round(torch.cuda.max_memory_allocated(dev) / 2**20)
                if dev.type == 'cuda' else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, device: str, kwargs: dict, out: dict) -> None:
    import torch.distributed as dist
    from mmengine.dist import all_reduce_params
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper

    from mmtransfer.models import MixPretrainer

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    cuda = device == 'cuda'
    dist.init_process_group('nccl' if cuda else 'gloo', rank=rank, world_size=world)
    dev = torch.device(f'cuda:{rank}' if cuda else 'cpu')
    if cuda:
        torch.cuda.set_device(dev)
    torch.manual_seed(0)                                   # the same initial weights
    model = MixPretrainer(arch=kwargs['arch'], num_classes=kwargs['classes'],
                          mix=dict(method='dense_distill', n=kwargs['n'])).to(dev)
    ddp = MMDistributedDataParallel(module=model, device_ids=[rank] if cuda else None,
                                    broadcast_buffers=False)
    optim_wrapper = build_optim_wrapper(ddp, dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    torch.manual_seed(1 + rank)                            # per-rank streams: own Lambda, data
    m, size = kwargs['m'], kwargs['size']
    for _ in range(kwargs['steps']):
        batch = dict(inputs=torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8),
                     labels=torch.randint(0, kwargs['classes'], (m,)),
                     inputs2=torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8))
        ddp.train_step(batch, optim_wrapper)
        all_reduce_params([b for b in model.student.buffers() if b.is_floating_point()], 'mean')
        model.update_teacher()
    state = torch.cat([t.detach().double().flatten() for t in model.state_dict().values()
                       if t.is_floating_point()])                      # student and teacher
    states = [torch.zeros_like(state) for _ in range(world)]
    dist.all_gather(states, state)
    if rank == 0:
        out['identical'] = all(torch.equal(states[0], s) for s in states[1:])
        out['max_abs_diff'] = max(float((states[0] - s).abs().max()) for s in states[1:])
    dist.destroy_process_group()


def ddp_ranks_identical(device: str, world: int = 2, timeout_s: float = 600,
                        **kwargs) -> dict:
    """``dense_distill`` under DDP in ``world`` processes (NCCL on CUDA, gloo on CPU) for a few
    steps with per-rank data and random streams; students and teachers must stay identical.
    Processes still running after ``timeout_s`` are ended and reported as a hang."""
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        out = manager.dict()
        start = time.perf_counter()
        context = mp.spawn(_ddp_worker, args=(world, _free_port(), device, kwargs, out),
                           nprocs=world, join=False)
        while not context.join(timeout=5):
            if time.perf_counter() - start > timeout_s:
                for process in context.processes:
                    process.terminate()
                out['error'] = f'no result after {timeout_s:.0f} s (hang?)'
                break
        return dict(world=world, backend='nccl' if device == 'cuda' else 'gloo',
                    wall_s=round(time.perf_counter() - start, 1), **dict(out))
