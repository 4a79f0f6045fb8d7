"""tools/wheelhouse.py (install into the environment's own torch, offline from a wheelhouse) and
the offline rules of tools/install_mmcv.py: cheap, no network, no mmcv build."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'tools'))
import install_mmcv as im  # noqa: E402  (standalone scripts: they run before the package exists)
import wheelhouse as wh  # noqa: E402

HERE = f'{sys.version_info[0]}.{sys.version_info[1]}'
OTHER = '3.12' if HERE != '3.12' else '3.11'
PLATFORMS = {tag.platform for tag in wh.sys_tags()}
PLATFORM = max((p for p in PLATFORMS if p.startswith('manylinux_2_')),
               key=lambda p: int(p.split('_')[2]), default=None)


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


# ---------------------------------------------------------------- the supported range
@pytest.mark.parametrize('version, ok', [
    ('2.10.0', False),
    ('2.10.1+cu128', False),
    ('2.11.0', True),
    ('2.11.0+cu130', True),                     # the common GPU image
    ('2.11.0a0+f70bd71a48.nv25.10', True),      # NGC's pre-release-looking 2.11 build
    ('2.12.1', True),
    ('2.13.0', True),
    ('2.13.0+cpu', True),
    ('2.13.0rc2', True),                        # a release candidate of a supported minor
    ('2.14.0', False),                          # C++20 headers: mmcv 2.1.0 is C++17
    ('2.14.0.dev20260301+cu130', False),        # a nightly of 2.14
    ('3.0.0', False),
    ('parrots', False),
])
def test_torch_range(version, ok):
    if ok:
        wh.check_torch(version)
    else:
        with pytest.raises(wh.InstallError, match=r'torch >= 2\.11 and < 2\.14'):
            wh.check_torch(version)


def test_python_range():
    wh.check_python((3, 11))
    wh.check_python((3, 12))
    for bad in ((3, 10), (3, 13)):
        with pytest.raises(wh.InstallError, match='Python 3.11 or 3.12'):
            wh.check_python(bad)


def test_check_torch_command_accepts_this_torch(capsys):
    assert wh.main(['check-torch']) == 0
    assert 'supported' in capsys.readouterr().out


# ---------------------------------------------------------------- target tags, resolution
def test_platform_expands_to_every_older_manylinux_tag():
    tags = wh.expand_platform('manylinux_2_28_x86_64')
    assert tags[0] == 'manylinux_2_28_x86_64' and 'manylinux_2_17_x86_64' in tags
    assert tags[-3:] == ['manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64']
    assert wh.python_tag('3.12') == 'cp312'
    for bad in (lambda: wh.expand_platform('linux_x86_64'), lambda: wh.python_tag('312')):
        with pytest.raises(wh.InstallError):
            bad()


def test_closure_drops_what_only_left_out_packages_need():
    resolved = {
        'mmdet': ('3.3.0', ['matplotlib', 'shapely', 'six', "pytest ; extra == 'tests'"]),
        'matplotlib': ('3.11.2', ['pillow>=9', 'kiwisolver', 'six']),
        'kiwisolver': ('1.5.1', []), 'pillow': ('13.0.0', []), 'six': ('1.17.0', []),
        'shapely': ('2.2.0', ['numpy>=1.21']), 'numpy': ('2.5.5', []),
        'pycocotools': ('2.0.11', ['matplotlib>=2.1.0', 'numpy']),
        'rich': ('15.0.0', ['markdown-it-py>=2.2.0', 'colorama ; sys_platform == "win32"',
                            'typing-extensions ; python_version < "3.11"']),
        'markdown-it-py': ('4.3.0', []),
    }
    env = wh.target_environment('3.12', 'manylinux_2_28_x86_64')
    got = wh.requirement_closure(['mmdet==3.3.0', 'pycocotools', 'rich'], resolved,
                                 {'matplotlib', 'numpy'}, env)
    # kiwisolver only serves matplotlib: gone; six is mmdet's own need: kept; extras, Windows
    # and old-Python markers are skipped
    assert got == {'mmdet': '3.3.0', 'shapely': '2.2.0', 'six': '1.17.0', 'pycocotools': '2.0.11',
                   'rich': '15.0.0', 'markdown-it-py': '4.3.0'}
    everything = wh.requirement_closure(['mmdet==3.3.0'], resolved, set(), env)
    assert {'matplotlib', 'kiwisolver', 'pillow', 'numpy'} <= set(everything)


def test_the_roots_never_name_torch_or_a_second_opencv():
    roots = wh.requirement_roots(cv2_present=True)
    names = {wh.canonicalize_name(wh.Requirement(r).name) for r in roots}
    assert not names & {'torch', 'torchvision', 'mmengine', 'mmcv', 'opencv-python', 'timm'}
    assert wh.OPENCV in wh.requirement_roots(cv2_present=False)
    assert wh.OPENCV not in wh.requirement_roots(False, {'opencv-python-headless'})


def test_left_out_packages_must_be_present():
    have = {'numpy', 'matplotlib'}
    missing = wh.left_out_missing(['numpy', 'scipy', 'matplotlib', 'opencv-python-headless'],
                                  have.__contains__, lambda module: False)
    assert missing == ['scipy', 'opencv-python-headless']
    assert wh.left_out_missing(['opencv-python-headless'], have.__contains__,
                               lambda module: module == 'cv2') == []   # any cv2 serves


def test_changes_name_new_and_changed_packages():
    assert wh.changes({'a': '1', 'setuptools': '82.0'},
                      {'a': '1', 'setuptools': '81.0', 'mmengine': '0.10.7'}) == [
        'mmengine 0.10.7', 'setuptools 82.0 -> 81.0']


# ---------------------------------------------------------------- the manifest
def write_wheelhouse(path, python=HERE, platform=PLATFORM, files=(), **extra):
    path.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, data in files:
        (path / name).write_bytes(data)
        entries.append(dict(file=name, size=len(data), sha256=wh.sha256(path / name)))
    manifest = dict(format=wh.FORMAT, python=python, abi='cp' + python.replace('.', ''),
                    implementation='cp', platform=platform, left_out=[], files=entries, **extra)
    (path / wh.MANIFEST).write_text(json.dumps(manifest))
    return path


@pytest.mark.skipif(PLATFORM is None, reason='not a manylinux machine')
@pytest.mark.parametrize('python, platform, match', [
    (OTHER, PLATFORM, rf'built for Python {OTHER}, this is Python {HERE}: build one with '
                      rf'--python {HERE}'),
    (HERE, 'manylinux_2_28_aarch64', 'built for manylinux_2_28_aarch64, which this machine does '
                                     'not run'),
    (HERE, 'manylinux_2_99_x86_64', 'built for manylinux_2_99_x86_64'),
])
def test_a_wheelhouse_for_another_python_or_platform_is_refused(tmp_path, capsys, python,
                                                               platform, match):
    house = write_wheelhouse(tmp_path / 'wh', python, platform)
    before = wh.installed()
    assert wh.main(['install', str(house)]) == 2
    assert re.search(match, one_error_line(capsys.readouterr().err))
    assert wh.installed() == before


def test_check_manifest_accepts_this_machine():
    if PLATFORM is None:
        pytest.skip('not a manylinux machine')
    wh.check_manifest(dict(format=wh.FORMAT, python=HERE, platform=PLATFORM),
                      sys.version_info[:2], PLATFORMS, 'wh')


def test_a_truncated_or_missing_file_or_manifest_is_refused(tmp_path, capsys):
    house = write_wheelhouse(tmp_path / 'wh', files=[('a-1.0-py3-none-any.whl', b'abc')])
    (house / 'a-1.0-py3-none-any.whl').write_bytes(b'ab')
    with pytest.raises(wh.InstallError, match='sha256 differs'):
        wh.check_files(house, wh.read_manifest(house))
    (house / 'a-1.0-py3-none-any.whl').unlink()
    with pytest.raises(wh.InstallError, match='a-1.0-py3-none-any.whl is listed in the manifest '
                                              'but missing'):
        wh.check_files(house, wh.read_manifest(house))
    assert wh.main(['install', str(tmp_path / 'nothing')]) == 2
    assert 'not a directory' in one_error_line(capsys.readouterr().err)
    (house / wh.MANIFEST).unlink()
    assert wh.main(['install', str(house)]) == 2
    assert 'manifest.json: missing' in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- a missing wheel, for real
def fake_wheel(folder, name, version, requires=()):
    """A minimal valid wheel (pure Python, one module) that pip can plan and install."""
    dist = f'{name}-{version}'
    path = folder / f'{dist}-py3-none-any.whl'
    meta = ''.join(f'Requires-Dist: {r}\n' for r in requires)
    files = {f'{name}.py': '',
             f'{dist}.dist-info/METADATA': f'Metadata-Version: 2.1\nName: {name}\n'
                                           f'Version: {version}\n{meta}',
             f'{dist}.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: test\n'
                                        'Root-Is-Purelib: true\nTag: py3-none-any\n'}
    files[f'{dist}.dist-info/RECORD'] = ''.join(f'{f},,\n' for f in files) + \
        f'{dist}.dist-info/RECORD,,\n'
    with zipfile.ZipFile(path, 'w') as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
    return path


def offline_env(folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(PIP_NO_INDEX='1', PIP_FIND_LINKS=str(folder), PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    return env


def test_pip_plan_names_the_missing_wheel(tmp_path):
    house = tmp_path / 'wh'
    house.mkdir()
    fake_wheel(house, 'mmtfake_a', '1.0', ['mmtfake_b>=2'])
    proc = wh._pip(['install', '--dry-run', '--quiet', 'mmtfake_a'], offline_env(house),
                   capture=True)
    assert proc.returncode != 0
    with pytest.raises(wh.InstallError, match=r'no wheel for mmtfake_b>=2 in the wheelhouse.*'
                                              r'nothing was installed'):
        wh.pip_ok(proc, 'the requirements', house)
    fake_wheel(house, 'mmtfake_b', '2.0')
    proc = wh._pip(['install', '--dry-run', '--quiet', 'mmtfake_a'], offline_env(house),
                   capture=True)
    wh.pip_ok(proc, 'the requirements', house)                          # now it plans


def test_a_missing_wheel_stops_install_before_anything_is_installed(tmp_path, capsys,
                                                                    monkeypatch):
    """The whole `install` path up to the plan: manifest, torch, mmcv's plan, pip's dry run."""
    if PLATFORM is None:
        pytest.skip('not a manylinux machine')
    house = tmp_path / 'wh'
    house.mkdir()
    wheel = fake_wheel(house, 'mmtfake_a', '1.0', ['mmtfake_b'])
    write_wheelhouse(house, files=[(wheel.name, wheel.read_bytes())])
    monkeypatch.setattr(wh, 'requirement_roots', lambda *a, **k: ['mmtfake_a'])
    monkeypatch.setattr(wh, 'NO_DEPS', ('mmtfake_a==1.0',))
    for key in [k for k in os.environ if k.startswith('PIP_') or k == 'FORCE_CUDA']:
        monkeypatch.delenv(key)
    monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)
    before = wh.installed()
    assert wh.main(['install', str(house)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert 'no wheel for mmtfake_b in the wheelhouse' in line and 'nothing was installed' in line
    assert wh.installed() == before


# ---------------------------------------------------------------- offline mmcv compiler
def test_offline_without_a_matching_nvcc_is_one_error(tmp_path):
    from tests.test_install_toolchain import fake_toolkit

    old = fake_toolkit(tmp_path / 'cuda12', '12.4')
    with pytest.raises(im.InstallError, match=r'no nvcc for CUDA 13\.x .*12\.4.*no package index'):
        im.choose_toolchain('13.0', [old], 'auto', tmp_path / 'pip', offline=True)
    with pytest.raises(im.InstallError, match='offline install'):
        im.choose_toolchain('13.0', [], 'pip', tmp_path / 'pip', offline=True)
    good = fake_toolkit(tmp_path / 'cuda13', '13.0')
    assert im.choose_toolchain('13.0', [good], 'auto', tmp_path / 'pip', offline=True).kind == \
        'system'


def test_offline_and_max_jobs_from_the_environment():
    assert im.pip_offline({'PIP_NO_INDEX': '1'}) and im.pip_offline({'PIP_NO_INDEX': 'true'})
    assert not im.pip_offline({}) and not im.pip_offline({'PIP_NO_INDEX': '0'})
    assert im.max_jobs({'MAX_JOBS': '3'}) == '3'
    assert im.max_jobs({}) == str(len(os.sched_getaffinity(0)))


def test_install_mmcv_dry_run_refuses_offline_cuda_without_nvcc(monkeypatch, capsys):
    """A GPU, pip offline, no toolkit anywhere: one line, exit 2, before any pip call."""
    monkeypatch.setattr(im, '_torch_facts', lambda: ('13.0', True, [(9, 0)]))
    monkeypatch.setattr(im, 'system_nvcc_candidates', lambda env: [])
    monkeypatch.setattr(im, '_pip', lambda *a, **k: pytest.fail('pip must not run'))
    monkeypatch.setenv('PIP_NO_INDEX', '1')
    monkeypatch.delenv('MMTRANSFER_CUDA_TOOLCHAIN', raising=False)
    for argv in (['--dry-run'], ['--ensure', '--from-source']):
        assert im.main(argv) == 2
        assert 'no package index' in one_error_line(capsys.readouterr().err)
    monkeypatch.setenv('PIP_NO_INDEX', '0')                    # online: the pip compiler
    assert im.main(['--dry-run']) == 0
    assert '"kind": "pip"' in capsys.readouterr().out


# ---------------------------------------------------------------- the Makefile
def test_make_install_torch_system_runs_the_installer_with_that_python():
    # `make test` runs this under make: its MAKEFLAGS/MAKELEVEL would add command-line
    # variables and 'Entering directory' lines to the child's output.
    env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL')}

    def dry(*args):
        return subprocess.run(['make', '--no-print-directory', '-n', *args], cwd=REPO,
                              env=env, capture_output=True, text=True)
    out = dry('install', 'TORCH=system', 'PYTHON=/opt/py/bin/python3', 'WHEELHOUSE=/w').stdout
    assert out.strip() == '/opt/py/bin/python3 tools/wheelhouse.py install /w'
    assert '/opt/py/bin/python3 -m pytest' in dry('test', 'TORCH=system',
                                                  'PYTHON=/opt/py/bin/python3').stdout
    bad = dry('install', 'TORCH=conda')
    assert bad.returncode != 0 and 'TORCH must be venv or system' in bad.stderr
