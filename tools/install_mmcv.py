#!/usr/bin/env python
"""Install mmcv 2.1.0 with its ops for this machine: CPU ops, or CUDA ops where there is a GPU.

Called by ``make install`` with the virtual environment's Python, after torch and before
everything that needs mmcv (so it imports nothing of ``mmtransfer``):

* **CPU** (torch sees no GPU and ``FORCE_CUDA`` is not ``1``): ``pip install mmcv==2.1.0`` with
  its ops compiled for the CPU; a prebuilt wheel directory given by ``--find-links`` (the
  project's ``../shared/wheels``) is used as a cache.
* **CUDA** (torch sees a GPU, or ``FORCE_CUDA=1``): mmcv is compiled from source with its CUDA
  ops (``--no-binary mmcv --no-cache-dir``: never a cached or shared CPU-only wheel, which has
  the same file name). The compiler is a system ``nvcc`` whose major version is torch's CUDA
  major version (``$CUDA_HOME``, ``$CUDA_PATH``, ``nvcc`` on ``PATH``, ``/usr/local/cuda``);
  without one, the registry's CUDA compiler packages pinned to torch's CUDA minor version
  (``nvidia-cuda-nvcc``, ``nvidia-nvvm``, ``nvidia-cuda-crt``, ``nvidia-cuda-cccl``, all
  ``==X.Y.*``: mixing minor versions fails in ptxas) are installed and ``CUDA_HOME`` points at a
  folder laid out as a toolkit (``<venv>/cuda-X.Y``). ``MMTRANSFER_CUDA_TOOLCHAIN=pip`` forces
  that path, ``=system`` refuses it. Target architectures: ``TORCH_CUDA_ARCH_LIST`` if set, else
  those of the local GPUs, else :data:`DEFAULT_ARCH` (Hopper: H100 / H200).

``--ensure`` first checks the installed mmcv and does nothing when it fits (a CUDA build for a
CUDA machine, built for the wanted architectures), so ``FORCE_CUDA=1 make install`` rebuilds a
CPU-only mmcv and a second run is a no-op. ``--dry-run`` prints the plan only. ``--from-source``
(``tools/wheelhouse.py install``: a torch of the environment's own) compiles the CPU build here
too, never from a cached or shared wheel. Under ``PIP_NO_INDEX=1`` (an offline install from a
wheelhouse) a CUDA build without a matching system nvcc is an error: the pip compiler cannot be
fetched. ``MAX_JOBS`` defaults to every core this process may use.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

MMCV = 'mmcv==2.1.0'
DEFAULT_ARCH = '9.0'
PIP_TOOLCHAIN = ('nvidia-cuda-nvcc', 'nvidia-nvvm', 'nvidia-cuda-crt', 'nvidia-cuda-cccl')
TOOLCHAIN_MODES = ('auto', 'system', 'pip')
MARKER = 'mmcv-build.json'  # in the venv: what the installed mmcv was built for


class InstallError(RuntimeError):
    """A one-line reason the install cannot go on."""


@dataclass
class Toolchain:
    kind: str            # 'system' or 'pip'
    cuda_home: str       # CUDA_HOME for the build
    nvcc: str            # the compiler
    version: str         # its release, e.g. '13.0'


@dataclass
class Plan:
    cuda: bool
    torch_cuda: str | None
    arch: str | None = None
    toolchain: Toolchain | None = None


# ---------------------------------------------------------------- detection (pure, testable)
def want_cuda(env: dict, cuda_available: bool) -> bool:
    """Build CUDA ops when torch sees a GPU or ``FORCE_CUDA=1`` (mmcv's own rule)."""
    return cuda_available or env.get('FORCE_CUDA', '0') == '1'


def nvcc_release(nvcc: str | Path) -> str | None:
    """``'13.0'`` from ``nvcc --version`` ("... release 13.0, V13.0.88"); None if it fails."""
    try:
        out = subprocess.run([str(nvcc), '--version'], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+)\.(\d+)', out)
    return f'{match[1]}.{match[2]}' if match else None


def system_nvcc_candidates(env: dict) -> list[Path]:
    """Where torch's extension builder looks for a toolkit, in its order (but every ``PATH``
    entry, not only the first): compilers inside a toolkit only (``<root>/bin/nvcc`` with
    ``<root>/include/cuda_runtime.h``), so a wrapper script such as ``/usr/local/bin/nvcc`` is
    skipped rather than taken for a toolkit at ``/usr/local``."""
    paths = [Path(env[key]) / 'bin' / 'nvcc' for key in ('CUDA_HOME', 'CUDA_PATH') if env.get(key)]
    paths += [Path(d) / 'nvcc' for d in env.get('PATH', '').split(os.pathsep) if d]
    paths.append(Path('/usr/local/cuda/bin/nvcc'))
    seen, found = set(), []
    for path in paths:
        key = os.path.realpath(path)
        root = Path(key).parent.parent
        if key not in seen and path.is_file() and (root / 'include' / 'cuda_runtime.h').is_file():
            seen.add(key)
            found.append(path)
    return found


def choose_toolchain(torch_cuda: str, candidates: list[Path], mode: str,
                     pip_home: Path, offline: bool = False) -> Toolchain:
    """A system nvcc of torch's CUDA major version (the exact minor preferred), or the pip one.

    ``mode``: ``'auto'`` (system if one matches, else pip), ``'system'`` (error if none
    matches), ``'pip'`` (always the registry's packages, as if no toolkit were installed).
    ``offline`` (pip runs with ``--no-index``): the pip compiler cannot be fetched, so no
    matching system nvcc is an error.
    """
    if mode not in TOOLCHAIN_MODES:
        raise InstallError(f'MMTRANSFER_CUDA_TOOLCHAIN must be one of {TOOLCHAIN_MODES}, '
                           f'got {mode!r}')
    major = torch_cuda.split('.')[0]
    if mode != 'pip':
        found = [(nvcc, nvcc_release(nvcc)) for nvcc in candidates]
        matching = [(nvcc, v) for nvcc, v in found if v and v.split('.')[0] == major]
        matching.sort(key=lambda item: item[1] != torch_cuda)       # exact minor first
        if matching:
            nvcc, version = matching[0]
            real = Path(os.path.realpath(nvcc))              # /usr/local/bin/nvcc is often a link
            return Toolchain('system', str(real.parent.parent), str(real), version)
        if mode == 'system':
            seen = ', '.join(f'{n} ({v or "?"})' for n, v in found) or 'none'
            raise InstallError(f'no system nvcc for CUDA {major}.x (torch {torch_cuda}); found: '
                               f'{seen}. Unset MMTRANSFER_CUDA_TOOLCHAIN to use the pip compiler')
    if offline:
        seen = ', '.join(f'{n} ({nvcc_release(n) or "?"})' for n in candidates) or 'none'
        raise InstallError(f'no nvcc for CUDA {major}.x (torch {torch_cuda}; looked in $CUDA_HOME, '
                           f'$CUDA_PATH, PATH, /usr/local/cuda; found: {seen}) and no package '
                           f'index to fetch the pip compiler from (offline install): install the '
                           f'CUDA {major} toolkit or point CUDA_HOME at it')
    return Toolchain('pip', str(pip_home), str(pip_home / 'bin' / 'nvcc'), torch_cuda)


def pip_offline(env: dict) -> bool:
    """Whether pip runs with ``--no-index`` (``PIP_NO_INDEX``, as tools/wheelhouse.py sets it)."""
    return env.get('PIP_NO_INDEX', '').strip().lower() in ('1', 'true', 'yes', 'on')


def max_jobs(env: dict) -> str:
    """``MAX_JOBS`` if set, else every core this process may use (``nproc``)."""
    if env.get('MAX_JOBS'):
        return env['MAX_JOBS']
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return str(cores or 1)


def cuda_arch_list(env: dict, capabilities: list[tuple[int, int]]) -> str:
    """``TORCH_CUDA_ARCH_LIST``, else the local GPUs' compute capabilities, else the default."""
    if env.get('TORCH_CUDA_ARCH_LIST'):
        return env['TORCH_CUDA_ARCH_LIST']
    if capabilities:
        return ';'.join(f'{a}.{b}' for a, b in sorted(set(capabilities)))
    return DEFAULT_ARCH


def pip_toolchain_requirements(torch_cuda: str) -> list[str]:
    """The four compiler packages, pinned to torch's CUDA ``major.minor``."""
    return [f'{name}=={torch_cuda}.*' for name in PIP_TOOLCHAIN]


def make_cuda_home(nvidia_root: Path, dest: Path, major: str) -> Path:
    """Lay out the pip CUDA packages (``site-packages/nvidia/cuXX``) as a toolkit for torch's
    extension builder: ``bin``, ``include``, ``nvvm`` linked, ``lib64/`` with every library
    linked plus the unversioned ``libcudart.so``. Idempotent."""
    for sub in ('bin', 'include', 'nvvm', 'lib'):
        if not (nvidia_root / sub).is_dir():
            raise InstallError(f'{nvidia_root / sub}: missing (pip CUDA compiler packages '
                               f'incomplete?)')
    dest.mkdir(parents=True, exist_ok=True)
    for sub in ('bin', 'include', 'nvvm'):
        _relink(dest / sub, nvidia_root / sub)
    lib64 = dest / 'lib64'
    lib64.mkdir(exist_ok=True)
    for lib in (nvidia_root / 'lib').iterdir():
        _relink(lib64 / lib.name, lib)
    _relink(lib64 / 'libcudart.so', lib64 / f'libcudart.so.{major}')
    return dest


def _relink(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and os.readlink(link) == str(target):
            return
        link.unlink()
    link.symlink_to(target)


def fits(installed: dict | None, plan: Plan) -> bool:
    """Whether the installed mmcv (``{'version', 'cuda', 'arch'}``) serves this plan."""
    if not installed or installed.get('version') != MMCV.split('==')[1]:
        return False
    if not plan.cuda:
        return True
    if installed.get('cuda') in (None, 'not available'):
        return False
    built = set((installed.get('arch') or '').replace(' ', ';').split(';')) - {''}
    return not built or set(plan.arch.replace(' ', ';').split(';')) <= built


# ---------------------------------------------------------------- this machine
def _torch_facts() -> tuple[str | None, bool, list[tuple[int, int]]]:
    import torch

    available = torch.cuda.is_available()
    caps = [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())] \
        if available else []
    return torch.version.cuda, available, caps


def make_plan(env: dict, venv: Path) -> Plan:
    torch_cuda, available, caps = _torch_facts()
    if not want_cuda(env, available):
        return Plan(cuda=False, torch_cuda=torch_cuda)
    if not torch_cuda:
        raise InstallError('FORCE_CUDA=1 (or a GPU) but this torch is a CPU-only build: install '
                           'the registry\'s CUDA torch (torch==2.13.0,!=2.13.0+cpu)')
    mode = env.get('MMTRANSFER_CUDA_TOOLCHAIN', 'auto')
    toolchain = choose_toolchain(torch_cuda, system_nvcc_candidates(env), mode,
                                 venv / f'cuda-{torch_cuda}', offline=pip_offline(env))
    return Plan(cuda=True, torch_cuda=torch_cuda, arch=cuda_arch_list(env, caps),
                toolchain=toolchain)


def installed_mmcv(venv: Path) -> dict | None:
    """Version and compiling CUDA version of the installed mmcv (a fresh interpreter), plus the
    architectures recorded at build time; None when mmcv or its ops do not import."""
    code = ('import json, mmcv, mmcv.ops; print(json.dumps(dict(version=mmcv.__version__, '
            'cuda=mmcv.ops.get_compiling_cuda_version())))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ['?'])[-1]
        print(f'mmcv: not importable here ({last})', flush=True)
        return None
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    marker = venv / MARKER
    if info['cuda'] not in (None, 'not available') and marker.is_file():
        info['arch'] = json.loads(marker.read_text()).get('arch')
    return info


def cuda_kernel_symbols(ext_path: Path) -> list[str]:
    """Names of the CUDA kernel launchers compiled into ``mmcv/_ext*.so`` (read as bytes)."""
    data = ext_path.read_bytes()
    return sorted({m.decode() for m in re.findall(rb'[A-Za-z0-9_]*CUDAKernelLauncher', data)})


def _pip(*args: str, env: dict | None = None) -> None:
    cmd = [sys.executable, '-m', 'pip', 'install', *args]
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _nvidia_root(torch_cuda: str) -> Path:
    """``site-packages/nvidia/cuXX``: where torch's CUDA packages (and the pip compiler) live."""
    return Path(sysconfig.get_paths()['purelib']) / 'nvidia' / f'cu{torch_cuda.split(".")[0]}'


def build(plan: Plan, venv: Path, find_links: str | None, env: dict,
          from_source: bool = False) -> None:
    env = dict(env, MMCV_WITH_OPS='1', MAX_JOBS=max_jobs(env))
    # this Python's scripts folder first: its ninja (else torch builds serially, one job)
    scripts = sysconfig.get_path('scripts')
    env['PATH'] = os.pathsep.join(filter(None, [scripts, env.get('PATH')]))
    if not plan.cuda:
        # from_source: compiled here against this torch, never a cached or shared wheel
        # (built against another torch, its ops would not load)
        source = ['--no-binary', 'mmcv', '--no-cache-dir', '--force-reinstall', '--no-deps'] \
            if from_source else []
        print(f'mmcv: CPU build with MAX_JOBS={env["MAX_JOBS"]}', flush=True)
        _pip('--no-build-isolation', *source,
             *(['--find-links', find_links] if find_links and not from_source else []), MMCV,
             env=env)
        # with deps unless from_source: then the caller (tools/wheelhouse.py) installed them, and
        # a `pip install mmcv` would walk into mmengine's opencv-python requirement
        return
    toolchain = plan.toolchain
    if toolchain.kind == 'pip':
        _pip('-q', *pip_toolchain_requirements(plan.torch_cuda))
        make_cuda_home(_nvidia_root(plan.torch_cuda), Path(toolchain.cuda_home),
                       plan.torch_cuda.split('.')[0])
    env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=plan.arch, CUDA_HOME=toolchain.cuda_home,
               PATH=f'{Path(toolchain.nvcc).parent}{os.pathsep}{env.get("PATH", "")}')
    # torch's CUDA headers include the math libraries' (cusparse.h, cublas_v2.h, ...): a minimal
    # system toolkit lacks them, torch's own pip CUDA packages have them. CPATH is searched
    # after the -I folders, so a full toolkit's headers still win.
    pip_include = _nvidia_root(plan.torch_cuda) / 'include'
    if pip_include.is_dir():
        env['CPATH'] = os.pathsep.join(filter(None, [str(pip_include), env.get('CPATH')]))
    env.pop('CUDA_PATH', None)
    print(f'mmcv: CUDA {plan.torch_cuda} build for sm {plan.arch} with the {toolchain.kind} '
          f'nvcc {toolchain.version} (CUDA_HOME={toolchain.cuda_home}), MAX_JOBS='
          f'{env["MAX_JOBS"]}; this compiles 136 objects: about 18 min on 2 cores per '
          f'architecture', flush=True)
    _pip('--no-build-isolation', '--no-binary', 'mmcv', '--no-cache-dir', '--force-reinstall',
         '--no-deps', MMCV, env=env)
    if not from_source:  # mmcv's own dependencies (opencv, ...), not touching the build
        _pip('-q', MMCV, env=env)
    try:
        (venv / MARKER).write_text(json.dumps(dict(arch=plan.arch, cuda=plan.torch_cuda,
                                                   toolchain=toolchain.kind)))
    except OSError as err:  # a system Python's prefix may be read-only: --ensure rebuilds less
        print(f'warning: {venv / MARKER}: not written ({err.strerror})', flush=True)


def verify(plan: Plan) -> str:
    """Check the result; returns a one-line summary."""
    info = installed_mmcv(Path(sys.prefix))
    if info is None:
        raise InstallError('mmcv.ops does not import after the install')
    if not plan.cuda:
        return f'mmcv {info["version"]} with CPU ops (compiled CUDA: {info["cuda"]})'
    import mmcv

    exts = sorted(Path(mmcv.__file__).parent.glob('_ext*.so'))
    symbols = cuda_kernel_symbols(exts[0]) if exts else []
    if info['cuda'] in (None, 'not available') or not symbols:
        raise InstallError(f'mmcv was built without CUDA ops ({exts[0] if exts else "no _ext"}: '
                           f'{len(symbols)} CUDA launchers)')
    return (f'mmcv {info["version"]} with CUDA {info["cuda"]} ops: {len(symbols)} CUDA kernel '
            f'launchers in {exts[0].name} (e.g. {", ".join(symbols[:2])})')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='tools/install_mmcv.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--find-links', help='prebuilt CPU wheels to use as a cache (CPU only)')
    parser.add_argument('--ensure', action='store_true',
                        help='do nothing when the installed mmcv already fits this machine')
    parser.add_argument('--dry-run', action='store_true', help='print the plan as JSON and stop')
    parser.add_argument('--from-source', action='store_true',
                        help='CPU too: compile mmcv here against this torch, never a cached or '
                             'prebuilt wheel (tools/wheelhouse.py install)')
    args = parser.parse_args(argv)
    env, venv = dict(os.environ), Path(sys.prefix)
    try:
        plan = make_plan(env, venv)
        if args.dry_run:
            print(json.dumps(asdict(plan), indent=1))
            return 0
        if args.ensure and fits(installed_mmcv(venv), plan):
            print(f'mmcv: installed build fits ({"CUDA " + plan.arch if plan.cuda else "CPU"})')
            return 0
        build(plan, venv, args.find_links if not plan.cuda else None, env, args.from_source)
        print(verify(plan))
    except InstallError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f'error: {" ".join(map(str, err.cmd[:6]))} ... failed with status {err.returncode}',
              file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
