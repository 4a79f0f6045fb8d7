#!/usr/bin/env python
"""Install mmtransfer into the torch a Python environment already has, online or offline.

    python tools/wheelhouse.py install                 # = make install TORCH=system
    python tools/wheelhouse.py build --python 3.12 --platform manylinux_2_28_x86_64 --out DIR
    python tools/wheelhouse.py install DIR             # = make install TORCH=system WHEELHOUSE=DIR
    python tools/wheelhouse.py check-torch             # the supported-range check alone

``install`` works in the running Python (no venv) and never installs, upgrades or removes torch
or torchvision: every pip call runs under a constraints file pinning the present versions. In
order: the checks (Python, torch range, torchvision, the wheelhouse's manifest and files, the
packages the wheelhouse leaves out, mmcv's build plan: ``tools/install_mmcv.py --dry-run``), then
``pip install --dry-run --report`` of everything (a missing wheel or a conflict stops here, before
anything is installed), then the install: the requirements, mmengine and timm (``--no-deps``:
mmengine's wheel requires ``opencv-python``, where GPU images carry ``opencv-python-headless``;
timm's requires torch and torchvision, already there), mmcv 2.1.0
compiled from source against this torch (``tools/install_mmcv.py``, ``MAX_JOBS`` = every core),
this package (editable). With a wheelhouse, pip runs with ``--no-index`` (``PIP_NO_INDEX=1``):
no network at all. A failure after the checks says what it had installed by then.

``build`` (on a machine with the registry) resolves the requirements for the target Python and
platform (``--only-binary=:all:``), downloads their wheels and mmcv's source archive, and writes
``manifest.json`` (target, files, sha256, what was left out). By default it leaves out the big
packages that GPU images already carry (numpy, scipy, matplotlib, opencv-python-headless) and what
only they need; ``install`` then checks that they are present. ``--leave-out none`` keeps them.

Each bad input is one ``error:`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.tags import sys_tags
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - pip always vendors it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.tags import sys_tags
    from pip._vendor.packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(__file__).resolve().parent

# Supported: torch 2.11 <= x < 2.14 (2.14's headers need C++20; mmcv 2.1.0 compiles as C++17).
TORCH_MIN, TORCH_END = (2, 11), (2, 14)
TORCH_RANGE = 'torch >= 2.11 and < 2.14 (2.11, 2.12, 2.13)'
PYTHONS = ((3, 11), (3, 12))

MMCV = 'mmcv==2.1.0'
MMENGINE = 'mmengine==0.10.7'
# mmengine 0.10.7's wheel requires these plus opencv-python>=3 (which is left to OPENCV).
MMENGINE_DEPS = ['addict', 'matplotlib', 'numpy', 'pyyaml', 'rich', 'termcolor', 'yapf']
# mmcv 2.1.0's requirements/runtime.txt but mmengine>=0.3.0 (MMENGINE, installed --no-deps);
# its setup.py requires opencv-python-headless when that is installed, else opencv-python.
MMCV_DEPS = ['addict', 'numpy', 'packaging', 'Pillow', 'pyyaml', 'yapf']
BUILD_TOOLS = ['setuptools>=77,<82', 'wheel', 'ninja']   # as requirements.txt; see install_mmcv
OPENCV = 'opencv-python-headless>=3'
# The rest of requirements.txt that the project needs to run and test (not ruff, not tensorboard:
# `--tensorboard` needs it, install it yourself).
PROJECT = ['mmdet==3.3.0', 'pycocotools', 'safetensors', 'pytest']
# timm's wheel requires torch and torchvision, which would make pip fetch a second torch for the
# wheelhouse: installed --no-deps like mmengine, its other requirements as roots.
TIMM = 'timm==1.0.31'
TIMM_DEPS = ['huggingface_hub', 'pyyaml', 'safetensors']
NO_DEPS = (MMENGINE, TIMM)
DEFAULT_LEAVE_OUT = ('numpy', 'scipy', 'matplotlib', 'opencv-python-headless')
OPENCV_NAMES = {'opencv-python', 'opencv-python-headless', 'opencv-contrib-python',
                'opencv-contrib-python-headless'}
MANIFEST = 'manifest.json'
FORMAT = 1


class InstallError(RuntimeError):
    """A one-line reason to stop."""


# ---------------------------------------------------------------- pure checks (tested)
def major_minor(version: str) -> tuple[int, int] | None:
    """``(2, 11)`` from ``'2.11.0+cu130'``, ``'2.11.0a0+f70bd71.nv25.10'`` (NGC), ``'2.11.0rc1'``;
    None when it is no version."""
    match = re.match(r'\s*v?(\d+)\.(\d+)', version)
    return (int(match[1]), int(match[2])) if match else None


def check_torch(version: str) -> None:
    """Refuse a torch outside the supported range. A pre-release or local build counts as its
    release's minor version: NGC's ``2.11.0a0+...`` is 2.11, a ``2.14.0.dev`` nightly is 2.14."""
    release = major_minor(version)
    if release is None or not TORCH_MIN <= release < TORCH_END:
        raise InstallError(f'torch {version} is not supported: this project needs {TORCH_RANGE} '
                           f'(2.14 and later need C++20, mmcv 2.1.0 builds as C++17)')


def check_python(version: tuple[int, int]) -> None:
    if not PYTHONS[0] <= version[:2] <= PYTHONS[-1]:
        raise InstallError(f'Python {version[0]}.{version[1]} is not supported: this project '
                           f'needs Python 3.11 or 3.12')


def python_tag(python: str) -> str:
    """``'cp312'`` from ``'3.12'``."""
    match = re.fullmatch(r'3\.(\d+)', python)
    if not match:
        raise InstallError(f'--python must be like 3.12, got {python!r}')
    return f'cp3{match[1]}'


def expand_platform(platform: str) -> list[str]:
    """Every platform tag a ``manylinux_2_N_ARCH`` machine accepts (pip matches ``--platform``
    exactly): ``manylinux_2_N`` down to ``manylinux_2_5`` and the legacy aliases."""
    match = re.fullmatch(r'manylinux_2_(\d+)_(\w+)', platform)
    if not match:
        raise InstallError(f'--platform must be like manylinux_2_28_x86_64, got {platform!r}')
    glibc, arch = int(match[1]), match[2]
    tags = [f'manylinux_2_{n}_{arch}' for n in range(glibc, 4, -1)]
    tags += [f'manylinux{year}_{arch}' for year, n in (('2014', 17), ('2010', 12), ('1', 5))
             if glibc >= n]
    return tags


def target_environment(python: str, platform: str) -> dict:
    """The PEP 508 marker environment of the target (Linux, CPython)."""
    machine = re.fullmatch(r'manylinux_2_\d+_(\w+)', platform)[1]
    return dict(python_version=python, python_full_version=f'{python}.0', os_name='posix',
                sys_platform='linux', platform_system='Linux', platform_machine=machine,
                platform_python_implementation='CPython', implementation_name='cpython',
                implementation_version=f'{python}.0', platform_release='', platform_version='',
                extra='')


def requirement_closure(roots: list[str], resolved: dict[str, tuple[str, list[str]]],
                        leave_out: set[str], env: dict) -> dict[str, str]:
    """The packages (name -> version) the ``roots`` need, from pip's resolution ``resolved``
    (name -> (version, Requires-Dist)), without ``leave_out`` and what only they need."""
    wanted: dict[str, str] = {}
    todo = [(Requirement(r), ('',)) for r in roots]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if req.marker is not None and not any(req.marker.evaluate(dict(env, extra=e))
                                              for e in extras):
            continue
        if name in leave_out or name in wanted:
            continue
        if name not in resolved:
            raise InstallError(f'{req.name}: not in pip\'s resolution for this target')
        version, requires = resolved[name]
        wanted[name] = version
        todo += [(Requirement(dep), ('', *sorted(req.extras))) for dep in requires]
    return wanted


def check_manifest(manifest: dict, python: tuple[int, int], platforms: set[str],
                   where: str) -> None:
    """Refuse a wheelhouse built for another Python version or platform."""
    if manifest.get('format') != FORMAT:
        raise InstallError(f'{where}: manifest format {manifest.get("format")!r}, expected '
                           f'{FORMAT} (rebuild it with this checkout\'s tools/wheelhouse.py)')
    here = f'{python[0]}.{python[1]}'
    if manifest.get('python') != here:
        raise InstallError(f'{where}: built for Python {manifest.get("python")}, this is Python '
                           f'{here}: build one with --python {here}')
    if manifest.get('platform') not in platforms:
        glibc = [(int(m[1]), p) for p in platforms
                 if (m := re.fullmatch(r'manylinux_2_(\d+)_\w+', p))]
        best = max(glibc)[1] if glibc else (sorted(platforms) or ['?'])[0]
        raise InstallError(f'{where}: built for {manifest.get("platform")}, which this machine '
                           f'does not run (it runs e.g. {best}): build one with --platform '
                           f'{best}')


def missing_package(pip_output: str) -> str | None:
    """The requirement pip found no distribution for, from its error output."""
    match = re.search(r'No matching distribution found for (\S+)', pip_output)
    return match[1] if match else None


def left_out_missing(leave_out: list[str], have_dist, have_module) -> list[str]:
    """Which of the packages a wheelhouse leaves out this environment lacks (opencv: any cv2)."""
    missing = []
    for name in leave_out:
        present = have_module('cv2') if name in OPENCV_NAMES else have_dist(name)
        if not present:
            missing.append(name)
    return missing


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``['mmengine 0.10.7', 'setuptools 82.0.0 -> 81.0.0']``: what an install changed."""
    out = []
    for name in sorted(after):
        if name not in before:
            out.append(f'{name} {after[name]}')
        elif before[name] != after[name]:
            out.append(f'{name} {before[name]} -> {after[name]}')
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(wheelhouse: Path) -> dict:
    path = wheelhouse / MANIFEST
    if not wheelhouse.is_dir():
        raise InstallError(f'{wheelhouse}: not a directory')
    if not path.is_file():
        raise InstallError(f'{path}: missing (not a wheelhouse built by tools/wheelhouse.py)')
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InstallError(f'{path}: unreadable ({err})') from None
    if not isinstance(manifest, dict):
        raise InstallError(f'{path}: not a manifest')
    return manifest


def check_files(wheelhouse: Path, manifest: dict) -> None:
    """Every listed file is there, with its sha256."""
    for entry in manifest.get('files', []):
        path = wheelhouse / entry['file']
        if not path.is_file():
            raise InstallError(f'{wheelhouse}: {entry["file"]} is listed in the manifest but '
                               f'missing (copy the whole folder)')
        if sha256(path) != entry['sha256']:
            raise InstallError(f'{path}: sha256 differs from the manifest (truncated copy?)')


# ---------------------------------------------------------------- this environment
def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata['Name']): d.version for d in metadata.distributions()
            if d.metadata['Name']}


def have_dist(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def have_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def present_torch() -> tuple[str, str]:
    """(torch, torchvision) versions as pip sees them; errors when either is absent."""
    try:
        torch = metadata.version('torch')
    except metadata.PackageNotFoundError:
        raise InstallError(f'no torch in this Python ({sys.executable}): install {TORCH_RANGE} '
                           f'first, or run plain `make install` (its own venv and torch)') from None
    check_torch(torch)
    try:
        vision = metadata.version('torchvision')
    except metadata.PackageNotFoundError:
        raise InstallError(f'no torchvision next to torch {torch} ({sys.executable}): install the '
                           f'torchvision built for it (this installer never installs torch or '
                           f'torchvision)') from None
    return torch, vision


def _pip(args: list[str], env: dict, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', 'pip', *args]
    if not capture:
        print('+', ' '.join(cmd), flush=True)
    return subprocess.run(cmd, env=env, text=True, capture_output=capture)


def pip_ok(proc: subprocess.CompletedProcess, what: str, wheelhouse: Path | None) -> None:
    """One error line for a failed dry run: the missing package, or pip's last error line."""
    if proc.returncode == 0:
        return
    out = (proc.stderr or '') + (proc.stdout or '')
    missing = missing_package(out)
    if missing and wheelhouse is not None:
        raise InstallError(f'{wheelhouse}: no wheel for {missing} in the wheelhouse that fits '
                           f'this Python and the present torch; nothing was installed')
    if missing:
        raise InstallError(f'pip finds no distribution for {missing}; nothing was installed')
    if 'externally-managed-environment' in out:
        raise InstallError(f'pip refuses to install into {sys.prefix}: it is marked externally '
                           f'managed (PEP 668); use a venv or conda environment with torch, or '
                           f'PIP_BREAK_SYSTEM_PACKAGES=1 if the image is yours; nothing was '
                           f'installed')
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith('ERROR')] or \
        [ln.strip() for ln in out.splitlines() if ln.strip()] or ['?']
    raise InstallError(f'{what}: pip refuses: {lines[-1]}; nothing was installed')


def requirement_roots(cv2_present: bool, leave_out: set[str] = frozenset()) -> list[str]:
    roots = BUILD_TOOLS + MMENGINE_DEPS + MMCV_DEPS + PROJECT + TIMM_DEPS
    if not cv2_present and canonicalize_name(OPENCV.split('>')[0]) not in leave_out:
        roots = roots + [OPENCV]
    return list(dict.fromkeys(roots))


def install(wheelhouse: Path | None) -> int:
    start = time.time()
    check_python(sys.version_info[:2])
    pip = metadata.version('pip') if have_dist('pip') else '0'
    if major_minor(pip) is None or major_minor(pip) < (22, 2):
        raise InstallError(f'pip {pip} in {sys.executable}: the install needs pip >= 22.2 '
                           f'(--dry-run --report)')
    torch, vision = present_torch()
    print(f'wheelhouse: installing into {sys.prefix} (Python {sys.version.split()[0]}), with '
          f'torch {torch} and torchvision {vision} as they are', flush=True)
    env = dict(os.environ)
    env.setdefault('MAX_JOBS', str(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                                   else os.cpu_count() or 1))
    leave_out: list[str] = []
    if wheelhouse is not None:
        wheelhouse = wheelhouse.resolve()
        manifest = read_manifest(wheelhouse)
        platforms = {tag.platform for tag in sys_tags()}
        check_manifest(manifest, sys.version_info[:2], platforms, str(wheelhouse))
        check_files(wheelhouse, manifest)
        leave_out = manifest.get('left_out', [])
        missing = left_out_missing(leave_out, have_dist, have_module)
        if missing:
            raise InstallError(f'{wheelhouse}: leaves out {", ".join(leave_out)} (expected in the '
                               f'environment), but this Python lacks {", ".join(missing)}: '
                               f'install them, or build the wheelhouse with --leave-out none')
        env.update(PIP_NO_INDEX='1', PIP_FIND_LINKS=str(wheelhouse))
    with tempfile.TemporaryDirectory(prefix='mmtransfer-install-') as tmp:
        constraints = Path(tmp) / 'constraints.txt'
        constraints.write_text(f'torch=={torch}\ntorchvision=={vision}\n')
        env['PIP_CONSTRAINT'] = str(constraints)
        # mmcv's plan first: "no nvcc and no registry" stops here, before any install
        plan = subprocess.run([sys.executable, str(TOOLS / 'install_mmcv.py'), '--dry-run'],
                              env=env, text=True, capture_output=True)
        if plan.returncode != 0:
            lines = [ln.strip() for ln in plan.stderr.splitlines() if ln.strip()] or ['?']
            err = [ln for ln in lines if ln.startswith('error:')]
            raise InstallError((err[-1][len('error: '):] if err else
                                f'tools/install_mmcv.py --dry-run failed: {lines[-1]}')
                               + '; nothing was installed')
        roots = requirement_roots(have_module('cv2'), set(leave_out))
        report = Path(tmp) / 'report.json'
        pip_ok(_pip(['install', '--dry-run', '--quiet', '--report', str(report), *roots], env,
                    capture=True), 'the requirements', wheelhouse)
        pip_ok(_pip(['install', '--dry-run', '--quiet', '--no-deps', *NO_DEPS], env,
                    capture=True), ' and '.join(NO_DEPS), wheelhouse)
        plan_names = [f'{i["metadata"]["name"]} {i["metadata"]["version"]}'
                      for i in json.loads(report.read_text()).get('install', [])]
        print(f'wheelhouse: pip plans {len(plan_names)} packages'
              f'{": " + ", ".join(plan_names) if plan_names else ""}', flush=True)
        before = installed()
        steps = [
            ('the requirements', [sys.executable, '-m', 'pip', 'install', '-q', *roots]),
            (' and '.join(NO_DEPS), [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                                     *NO_DEPS]),
            ('mmcv', [sys.executable, str(TOOLS / 'install_mmcv.py'), '--ensure',
                      '--from-source']),
            ('mmtransfer', [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                            '--no-build-isolation', '-e', str(REPO)]),
        ]
        for what, cmd in steps:
            t0 = time.time()
            print('+', ' '.join(cmd), flush=True)
            proc = subprocess.run(cmd, env=env)
            if proc.returncode != 0:
                done = changes(before, installed())
                raise InstallError(f'installing {what} failed (status {proc.returncode}); '
                                   f'installed so far: {", ".join(done) or "nothing"}')
            print(f'wheelhouse: {what} took {time.time() - t0:.0f} s', flush=True)
    after = installed()
    if (after.get('torch'), after.get('torchvision')) != (torch, vision):
        raise InstallError(f'torch/torchvision changed: {after.get("torch")}, '
                           f'{after.get("torchvision")} (was {torch}, {vision})')
    code = ('import torch, mmcv, mmcv.ops, mmengine, mmdet, mmtransfer; print("installed: torch", '
            'torch.__version__, "| mmcv", mmcv.__version__, "| mmdet", mmdet.__version__, '
            '"| mmengine", mmengine.__version__)')
    proc = subprocess.run([sys.executable, '-c', code], cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise InstallError(f'the installed stack does not import; installed: '
                           f'{", ".join(changes(before, after)) or "nothing"}')
    print(f'wheelhouse: done in {time.time() - start:.0f} s; changed: '
          f'{", ".join(changes(before, after)) or "nothing"}', flush=True)
    return 0


# ---------------------------------------------------------------- build (with the registry)
def _target_args(python: str, platform: str) -> list[str]:
    args = ['--only-binary=:all:', '--python-version', python, '--implementation', 'cp',
            '--abi', python_tag(python), '--abi', 'abi3', '--abi', 'none']
    for tag in expand_platform(platform):
        args += ['--platform', tag]
    return args


def _pip_supports(option: str, command: str = 'download') -> bool:
    out = subprocess.run([sys.executable, '-m', 'pip', command, '--help'], capture_output=True,
                         text=True).stdout
    return option in out


def build(python: str, platform: str, out: Path, leave_out: list[str],
          constraint: str | None) -> int:
    start = time.time()
    tag = python_tag(python)
    expand_platform(platform)
    leave = {canonicalize_name(n) for n in leave_out}
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InstallError(f'{out}: exists and is not an empty folder (remove it or choose '
                           f'another --out)')
    target = _target_args(python, platform)
    env = dict(os.environ)
    env.pop('PIP_NO_INDEX', None)
    extra = ['-c', constraint] if constraint else []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}-', dir=out.parent))
    try:
        roots = requirement_roots(cv2_present=False)
        report = tmp / 'report.json'
        pip_ok(_pip(['install', '--dry-run', '--ignore-installed', '--quiet', '--report',
                     str(report), *target, *extra, *roots], env, capture=True),
               f'resolving for Python {python} {platform}', None)
        resolved = {canonicalize_name(i['metadata']['name']):
                    (i['metadata']['version'], i['metadata'].get('requires_dist', []))
                    for i in json.loads(report.read_text())['install']}
        report.unlink()
        wanted = requirement_closure(roots, resolved, leave, target_environment(python, platform))
        pins = [f'{name}=={version}' for name, version in sorted(wanted.items())] + list(NO_DEPS)
        print(f'wheelhouse: {len(pins)} wheels for Python {python} {platform}, leaving out '
              f'{", ".join(sorted(leave)) or "nothing"}', flush=True)
        proc = _pip(['download', '--no-deps', '-q', '-d', str(tmp), *target, *pins], env)
        if proc.returncode != 0:
            raise InstallError(f'pip download of the wheels failed (status {proc.returncode})')
        # mmcv's source archive: pip prepares its metadata (setup.py imports pkg_resources,
        # gone from setuptools >= 82), so its build environment gets setuptools < 82
        bc = tmp / 'build-constraints.txt'
        bc.write_text('setuptools<82\n')
        sdist_env = dict(env)
        if _pip_supports('--build-constraint'):
            bc_args = ['--build-constraint', str(bc)]
        else:
            bc_args, sdist_env['PIP_CONSTRAINT'] = [], str(bc)
        proc = _pip(['download', '--no-deps', '-q', '--no-binary', ':all:', *bc_args, '-d',
                     str(tmp), MMCV], sdist_env)
        bc.unlink()
        if proc.returncode != 0:
            raise InstallError(f'pip download of the {MMCV} source archive failed')
        files = []
        for path in sorted(tmp.iterdir()):
            files.append(dict(file=path.name, size=path.stat().st_size, sha256=sha256(path)))
        total = sum(f['size'] for f in files)
        manifest = dict(format=FORMAT, python=python, abi=tag, implementation='cp',
                        platform=platform, platforms=expand_platform(platform),
                        left_out=sorted(leave), mmcv_source=next(
                            (f['file'] for f in files if f['file'].startswith('mmcv-')), None),
                        requirements=pins, size_bytes=total,
                        built=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                        pip=metadata.version('pip'), files=files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n')
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    biggest = sorted(files, key=lambda f: -f['size'])[:5]
    print(f'wheelhouse: {out}: {len(files)} files, {total / 2**20:.1f} MiB in '
          f'{time.time() - start:.0f} s; biggest: '
          + ', '.join(f'{f["file"]} {f["size"] / 2**20:.1f} MiB' for f in biggest), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='tools/wheelhouse.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    b = sub.add_parser('build', help='download a wheelhouse for a target Python and platform')
    b.add_argument('--python', required=True, help='target Python version, e.g. 3.12')
    b.add_argument('--platform', required=True, help='e.g. manylinux_2_28_x86_64')
    b.add_argument('--out', required=True, type=Path, help='a new or empty folder')
    b.add_argument('--leave-out', default=','.join(DEFAULT_LEAVE_OUT),
                   help='comma-separated packages the target already has (default: %(default)s;'
                        ' "none" keeps everything)')
    b.add_argument('-c', '--constraint', help='a pip constraints file for the resolution')
    i = sub.add_parser('install', help='install into this Python, online or from WHEELHOUSE')
    i.add_argument('wheelhouse', nargs='?', type=Path, help='a folder made by build')
    sub.add_parser('check-torch', help='check the present torch against the supported range')
    args = parser.parse_args(argv)
    try:
        if args.command == 'build':
            leave = [] if args.leave_out.strip() in ('', 'none') else \
                [n.strip() for n in args.leave_out.split(',') if n.strip()]
            return build(args.python, args.platform, args.out, leave, args.constraint)
        if args.command == 'install':
            return install(args.wheelhouse)
        check_python(sys.version_info[:2])
        torch, vision = present_torch()
        print(f'torch {torch} (torchvision {vision}): supported ({TORCH_RANGE})')
        return 0
    except InstallError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
