"""tools/install_mmcv.py: which mmcv build, which nvcc, which CUDA_HOME, on fake layouts."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, 'tools'))
import install_mmcv as im  # noqa: E402  (a standalone script: make install runs it before us)


def fake_toolkit(root, release, headers=True):
    """``root/bin/nvcc`` printing an nvcc banner of ``release``; ``include/`` if ``headers``."""
    (root / 'bin').mkdir(parents=True)
    nvcc = root / 'bin' / 'nvcc'
    nvcc.write_text('#!/bin/sh\necho "nvcc: NVIDIA (R) Cuda compiler driver"\n'
                    f'echo "Cuda compilation tools, release {release}, V{release}.88"\n')
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    if headers:
        (root / 'include').mkdir()
        (root / 'include' / 'cuda_runtime.h').write_text('')
    return nvcc


def test_cuda_is_built_for_a_gpu_or_force_cuda_only():
    assert not im.want_cuda({}, cuda_available=False)
    assert not im.want_cuda({'FORCE_CUDA': '0'}, cuda_available=False)
    assert im.want_cuda({'FORCE_CUDA': '1'}, cuda_available=False)
    assert im.want_cuda({}, cuda_available=True)


def test_nvcc_release_is_read_from_the_banner(tmp_path):
    assert im.nvcc_release(fake_toolkit(tmp_path / 'cuda', '12.4')) == '12.4'
    assert im.nvcc_release(tmp_path / 'missing' / 'nvcc') is None


def test_candidates_follow_torchs_order_and_skip_wrappers(tmp_path):
    home = fake_toolkit(tmp_path / 'home', '13.0')
    on_path = fake_toolkit(tmp_path / 'path', '12.4')
    wrapper = fake_toolkit(tmp_path / 'wrap', '13.0', headers=False)   # like /usr/local/bin/nvcc
    env = {'CUDA_HOME': str(tmp_path / 'home'),
           'PATH': os.pathsep.join([str(wrapper.parent), str(on_path.parent)])}
    found = im.system_nvcc_candidates(env)
    assert found[:2] == [home, on_path] and wrapper not in found


@pytest.mark.parametrize('releases, mode, kind, version', [
    (['13.0'], 'auto', 'system', '13.0'),
    (['13.2'], 'auto', 'system', '13.2'),        # same major: torch's builder accepts it
    (['13.2', '13.0'], 'auto', 'system', '13.0'),  # the exact minor is preferred
    (['12.4'], 'auto', 'pip', '13.0'),           # CUDA 12 toolkit: torch refuses it
    ([], 'auto', 'pip', '13.0'),                 # driver only, no toolkit
    (['13.0'], 'pip', 'pip', '13.0'),            # forced, as if no toolkit were installed
])
def test_toolchain_choice(tmp_path, releases, mode, kind, version):
    candidates = [fake_toolkit(tmp_path / f'cuda{i}', r) for i, r in enumerate(releases)]
    pip_home = tmp_path / 'venv' / 'cuda-13.0'
    chosen = im.choose_toolchain('13.0', candidates, mode, pip_home)
    assert (chosen.kind, chosen.version) == (kind, version)
    if kind == 'pip':
        assert chosen.cuda_home == str(pip_home) and chosen.nvcc == str(pip_home / 'bin' / 'nvcc')
    else:
        nvcc = candidates[releases.index(version)]
        assert chosen.nvcc == str(nvcc) and chosen.cuda_home == str(nvcc.parent.parent)


def test_system_mode_without_a_match_is_a_one_line_error(tmp_path):
    nvcc = fake_toolkit(tmp_path / 'cuda', '12.4')
    with pytest.raises(im.InstallError, match=r'no system nvcc for CUDA 13\.x.*12\.4'):
        im.choose_toolchain('13.0', [nvcc], 'system', tmp_path / 'pip')
    with pytest.raises(im.InstallError, match='MMTRANSFER_CUDA_TOOLCHAIN'):
        im.choose_toolchain('13.0', [nvcc], 'conda', tmp_path / 'pip')


def test_pip_compiler_is_pinned_to_torchs_minor_version():
    assert im.pip_toolchain_requirements('13.0') == [
        'nvidia-cuda-nvcc==13.0.*', 'nvidia-nvvm==13.0.*', 'nvidia-cuda-crt==13.0.*',
        'nvidia-cuda-cccl==13.0.*']


def test_arch_list_from_env_then_local_gpus_then_default():
    assert im.cuda_arch_list({'TORCH_CUDA_ARCH_LIST': '8.0;9.0'}, [(9, 0)]) == '8.0;9.0'
    assert im.cuda_arch_list({}, [(9, 0), (8, 0), (9, 0)]) == '8.0;9.0'
    assert im.cuda_arch_list({}, []) == im.DEFAULT_ARCH == '9.0'


def test_cuda_home_lays_out_the_pip_packages_as_a_toolkit(tmp_path):
    root = tmp_path / 'site-packages' / 'nvidia' / 'cu13'
    for sub in ('bin', 'include', 'nvvm', 'lib'):
        (root / sub).mkdir(parents=True)
    (root / 'lib' / 'libcudart.so.13').write_text('')
    (root / 'lib' / 'libnvrtc.so.13').write_text('')
    home = im.make_cuda_home(root, tmp_path / 'venv' / 'cuda-13.0', '13')
    for sub in ('bin', 'include', 'nvvm'):
        assert (home / sub).resolve() == (root / sub).resolve()
    assert (home / 'lib64' / 'libnvrtc.so.13').resolve() == (root / 'lib' / 'libnvrtc.so.13')
    assert (home / 'lib64' / 'libcudart.so').resolve() == (root / 'lib' / 'libcudart.so.13')
    assert im.make_cuda_home(root, home, '13') == home                 # idempotent
    (root / 'nvvm').rmdir()
    with pytest.raises(im.InstallError, match='nvvm'):
        im.make_cuda_home(root, tmp_path / 'other', '13')


@pytest.mark.parametrize('installed, cuda, arch, ok', [
    (None, False, None, False),                                         # no mmcv
    (dict(version='2.2.0', cuda='not available'), False, None, False),  # mdet refuses it
    (dict(version='2.1.0', cuda='not available'), False, None, True),   # CPU machine
    (dict(version='2.1.0', cuda='not available'), True, '9.0', False),  # CPU-only on a GPU
    (dict(version='2.1.0', cuda='13.0', arch='9.0'), True, '9.0', True),
    (dict(version='2.1.0', cuda='13.0', arch='9.0'), True, '8.0;9.0', False),  # arch missing
    (dict(version='2.1.0', cuda='13.0', arch='8.0;9.0'), True, '9.0', True),
    (dict(version='2.1.0', cuda='13.0', arch='9.0'), False, None, True),  # CUDA build on CPU
])
def test_an_installed_mmcv_fits_only_the_machine_it_serves(installed, cuda, arch, ok):
    plan = im.Plan(cuda=cuda, torch_cuda='13.0', arch=arch)
    assert im.fits(installed, plan) is ok


def test_cuda_kernel_symbols_are_read_from_the_binary(tmp_path):
    ext = tmp_path / '_ext.so'
    ext.write_bytes(b'\x00NMSCUDAKernelLauncher\x00junk\x00ROIAlignForwardCUDAKernelLauncher\x00'
                    b'NMSCUDAKernelLauncher\x00nms_cpu\x00')
    assert im.cuda_kernel_symbols(ext) == ['NMSCUDAKernelLauncher',
                                           'ROIAlignForwardCUDAKernelLauncher']
