"""mmtransfer.cli.run: which errors become one line, and what that line says."""
from __future__ import annotations

import glob
import os

import pytest

from mmtransfer.cli import (
    ArgumentParser,
    check_build_keys,
    check_output_path,
    non_empty,
    output_dir,
    output_file,
    read_config,
    run,
)
from tests.conftest import REPO


def _line(capsys, main) -> str:
    assert run(main, []) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    return err[len('error: '):-1]


def test_an_os_error_on_a_path_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    under = tmp_path / 'file' / 'out.json'
    assert _line(capsys, lambda argv: open(under, 'w')) == \
        f'{under}: a part of this path is a file, not a directory'
    assert _line(capsys, lambda argv: open(tmp_path, 'w')) == \
        f'{tmp_path}: is a directory, not a file'


def test_an_os_error_without_a_path_is_a_bug(capsys):
    def main(argv):
        raise OSError('socket went away')

    with pytest.raises(OSError):
        run(main, [])


def test_an_unknown_key_of_a_class_mmengine_builds_is_one_line(capsys):
    from mmengine.registry import Registry

    class Loop:
        def __init__(self, max_iters=1):
            pass

    registry = Registry('test loops')
    registry.register_module(module=Loop)
    assert _line(capsys, lambda argv: registry.build(dict(type='Loop', bogus=1))) == \
        "Loop has no option 'bogus' (a typo in the config or --cfg-options?)"


def test_check_build_keys_names_the_key_and_leaves_what_it_cannot_check():
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    class ProbeHook(Hook):
        def __init__(self, interval=1):
            pass

    class LenientHook(Hook):
        def __init__(self, interval=1, **kwargs):
            pass

    for hook in (ProbeHook, LenientHook):
        HOOKS.register_module(module=hook, force=True)
    try:
        def check(**cfg):
            check_build_keys(Config(cfg))

        check(train_cfg=dict(by_epoch=False, max_iters=3), val_cfg=None,
              custom_hooks=[dict(type='ProbeHook', interval=2),
                            dict(type='LenientHook', anything=1),  # **kwargs: not checked
                            dict(type='NotRegistered', anything=1)])  # left to mmengine
        with pytest.raises(ValueError,
                           match=r"^custom_hooks\.1: ProbeHook has no option 'intrval'"):
            check(custom_hooks=[dict(type='ProbeHook'), dict(type='ProbeHook', intrval=2)])
        with pytest.raises(ValueError,
                           match="^train_cfg: EpochBasedTrainLoop has no option 'max_iters'"):
            check(train_cfg=dict(by_epoch=True, max_iters=3))  # by_epoch picks the loop
        with pytest.raises(ValueError, match="^test_cfg: TestLoop has no option 'bogus'"):
            check(test_cfg=dict(bogus=1))
        check_build_keys(Config(dict(train_cfg=dict(bogus=1))), loops=('test_cfg',))
    finally:
        for hook in ('ProbeHook', 'LenientHook'):
            HOOKS.module_dict.pop(hook)


def test_the_same_type_error_from_our_own_code_keeps_its_traceback():
    class Loop:
        def __init__(self, max_iters=1):
            pass

    with pytest.raises(TypeError, match='bogus'):
        run(lambda argv: Loop(bogus=1), [])


def test_check_output_path(tmp_path):
    (tmp_path / 'file').write_text('x')
    check_output_path(tmp_path / 'new' / 'deeper' / 'out.md')  # folders made when writing
    check_output_path(tmp_path / 'file')                        # replaced when writing
    check_output_path(tmp_path, directory=True)
    with pytest.raises(IsADirectoryError):
        check_output_path(tmp_path)
    with pytest.raises(NotADirectoryError, match='is a file, not a directory'):
        check_output_path(tmp_path / 'file', directory=True)
    with pytest.raises(NotADirectoryError, match=f'{tmp_path / "file"} is a file'):
        check_output_path(tmp_path / 'file' / 'a' / 'b.md')


def test_the_path_flag_types_name_the_flag_in_one_line(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    parser = ArgumentParser(prog='tool')
    parser.add_argument('--out-dir', type=output_dir)
    parser.add_argument('--out', type=output_file)
    parser.add_argument('--data-root', type=non_empty)
    assert parser.parse_args(['--out-dir', str(tmp_path / 'new'), '--out', str(tmp_path / 'file'),
                              '--data-root', 'x']).out_dir == str(tmp_path / 'new')
    for argv, line in [
        (['--out-dir', str(tmp_path / 'file')],
         f'argument --out-dir: {tmp_path / "file"}: is a file, not a directory'),
        (['--out', str(tmp_path)], f'argument --out: {tmp_path}: is a directory, not a file'),
        (['--out', str(tmp_path / 'file' / 'x.pkl')],
         f'argument --out: {tmp_path / "file" / "x.pkl"}: {tmp_path / "file"} is a file, not a '
         'directory'),
        (['--data-root', ''], 'argument --data-root: must not be empty'),
    ]:
        assert run(parser.parse_args, argv) == 2
        assert capsys.readouterr().err == f'error: {line} (see tool --help)\n'


@pytest.mark.parametrize('path', sorted(glob.glob('configs/**/*.py', root_dir=REPO,
                                                  recursive=True)))
def test_every_shipped_config_passes_check_build_keys(path):
    """The check refuses before any work, so a false alarm would stop a real run."""
    check_build_keys(read_config(os.path.join(REPO, path)))
