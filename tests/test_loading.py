"""The file readers of mmtransfer.loading, as an attacker would probe them: a family of pickle
gadgets, each nested in a genuine checkpoint, is refused by every reader and never runs; genuine
files come back exactly as torch's unrestricted reader returns them."""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from mmtransfer import restricted_pickle
from mmtransfer.loading import (
    TRUST_ENV,
    CheckpointError,
    UnsafeFileError,
    load_backbone,
    load_checkpoint,
    load_data_pickle,
    load_weights,
)
from tests.gadgets import GADGETS, Call, eval_through_rebuild, exec_through_rebuild, plant

PLACES = ('meta', 'message_hub', 'optimizer')


def _same(a, b, path='') -> None:
    """Deep equality of what two readers returned: types, keys in order, values."""
    assert type(a) is type(b), (path, type(a), type(b))
    if torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            _same(a[key], b[key], f'{path}/{key}')
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f'{path}[{i}]')
    elif isinstance(a, HistoryBuffer):
        _same(a.data, b.data, path)
        assert a.max_length == b.max_length and a.mean() == b.mean(), path
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, (path, a, b)


@pytest.fixture(scope='module')
def genuine(pretrain_checkpoint):
    return torch.load(pretrain_checkpoint, map_location='cpu', weights_only=False)


def test_a_genuine_checkpoint_reads_exactly_as_torchs_unrestricted_reader(pretrain_checkpoint,
                                                                         genuine):
    ckpt = load_checkpoint(pretrain_checkpoint)
    _same(ckpt, genuine)
    assert set(ckpt) >= {'state_dict', 'meta', 'message_hub', 'optimizer', 'rng_states'}
    assert ckpt['state_dict']._metadata == genuine['state_dict']._metadata
    # HistoryBuffer statistics are mmengine's own methods, found by name
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert loss.statistics('mean') == genuine['message_hub']['log_scalars']['train/loss'].mean()
    _same(load_weights(pretrain_checkpoint), genuine)


def test_the_gadgets_run_code_under_a_weights_only_allowlist_with_getattr(tmp_path, genuine):
    """The hole of issue 24, reproduced: the loader we had ran these; ours refuses them below."""
    old_allowlist = [HistoryBuffer, getattr, np.ndarray, np.dtype,
                     np._core.multiarray._reconstruct, np._core.multiarray.scalar]
    for gadget in (eval_through_rebuild, exec_through_rebuild):
        marker = tmp_path / f'RAN_{gadget.__name__}'
        torch.save(plant(genuine, 'meta', gadget(marker)), tmp_path / 'evil.pth')
        with torch.serialization.safe_globals(old_allowlist):
            try:
                torch.load(tmp_path / 'evil.pth', weights_only=True)
            except Exception:  # exec returns None: the load fails, after the code ran
                pass
        assert marker.exists(), gadget.__name__


@pytest.mark.parametrize('place', PLACES)
@pytest.mark.parametrize('gadget', sorted(GADGETS))
def test_every_gadget_is_refused_by_every_reader(tmp_path, genuine, gadget, place, monkeypatch):
    marker = tmp_path / 'RAN'
    path = tmp_path / 'evil.pth'
    torch.save(plant(genuine, place, GADGETS[gadget](marker)), path)
    for read in (load_checkpoint, load_weights, load_backbone):
        with pytest.raises(UnsafeFileError, match=r'evil\.pth: refused: loading it would use '):
            read(path)
    monkeypatch.setenv(TRUST_ENV, '1')  # the opt-in is for training checkpoints only
    for read in (load_weights, load_backbone):
        with pytest.raises(UnsafeFileError, match='refused'):
            read(path)
    assert not marker.exists()


@pytest.mark.parametrize('gadget, names', [
    ('eval', 'torch._tensor._rebuild_from_type_v2'),
    ('getattr_walk', 'builtins.getattr'),
    ('history_buffer_call', 'calling HistoryBuffer'),
    ('history_buffer_renamed', 'HistoryBuffer statistics other than its own'),
    ('array_of_other_class', 'class other than numpy.ndarray'),
    ('array_of_objects', 'objects or fields'),
    ('tensor_with_hooks', 'backward hooks'),
    ('tensor_build', 'BUILD (setting the state) of a Tensor'),
])
def test_the_refusal_names_what_the_file_asked_for(tmp_path, gadget, names):
    torch.save({'x': GADGETS[gadget](tmp_path / 'RAN')}, tmp_path / 'evil.pth')
    with pytest.raises(UnsafeFileError) as err:
        load_checkpoint(tmp_path / 'evil.pth')
    assert names in str(err.value) and len(str(err.value).splitlines()) == 1


def _pickle_bytes(*ops: bytes) -> bytes:
    return pickle.PROTO + b'\x02' + b''.join(ops) + pickle.STOP


@pytest.mark.parametrize('program, refused', [
    # GLOBAL names outside the table
    (_pickle_bytes(b'cposix\nsystem\n'), 'posix.system'),
    (_pickle_bytes(b'cbuiltins\neval\n'), 'builtins.eval'),
    (_pickle_bytes(b'cfunctools\npartial\n'), 'functools.partial'),
    (_pickle_bytes(b'coperator\nattrgetter\n'), 'operator.attrgetter'),
    (_pickle_bytes(b'ctorch._tensor\n_rebuild_from_type_v2\n'), '_rebuild_from_type_v2'),
    # opcodes that call or import by themselves
    (_pickle_bytes(b'(S"ls"\nios\nsystem\n'), 'INST'),
    (_pickle_bytes(b'\x82\x01'), 'EXT1'),  # copyreg's extension registry
    # calling something that is not a rebuild: a value the stack holds
    (_pickle_bytes(b'ctorch\nfloat32\n)R'), 'REDUCE of dtype'),
    # methods of things that are not lists / dicts / sets
    (_pickle_bytes(b'ctorch\nfloat32\nK\x01a'), 'APPEND to a non-list'),
    (_pickle_bytes(b'ctorch\nfloat32\nK\x01K\x02s'), 'SETITEM of a non-dict'),
    (_pickle_bytes(b'ctorch\nfloat32\n}b'), 'BUILD (setting the state) of a dtype'),
])
def test_hand_written_programs_are_refused(program, refused):
    with pytest.raises(restricted_pickle.RefusedName, match=refused.replace('(', r'\(')
                       .replace(')', r'\)')):
        restricted_pickle.load(program, restricted_pickle.CHECKPOINT_NAMES)


def test_a_torchscript_archive_is_not_handed_to_torch_jit_load(tmp_path):
    """``torch.load(weights_only=False)`` dispatches such a zip to ``torch.jit.load``."""
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / 'scripted.pth')
    for read in (load_backbone, load_checkpoint, load_weights):
        with pytest.raises(UnsafeFileError, match='scripted.pth: refused: a TorchScript archive'):
            read(tmp_path / 'scripted.pth')


def test_a_backbone_holds_tensors_only(tmp_path):
    state = OrderedDict(w=torch.arange(6.).reshape(2, 3), b=torch.tensor([1, 2]))
    torch.save(state, tmp_path / 'b.pth')
    _same(load_backbone(tmp_path / 'b.pth'), state)
    _same(load_weights(tmp_path / 'b.pth'), state)
    torch.save(dict(state, history=np.arange(3)), tmp_path / 'np.pth')
    with pytest.raises(UnsafeFileError, match=r'numpy.*backbone \(plain tensors\)'):
        load_backbone(tmp_path / 'np.pth')
    with pytest.raises(CheckpointError, match='neither a backbone'):
        load_weights(tmp_path / 'np.pth')  # parsed once, refused by what it holds


def test_views_and_offsets_of_storages_come_back(tmp_path):
    base = torch.arange(24.).reshape(4, 6)
    data = dict(view=base[1:, 2:5], t=base.t(), same=base, param=torch.nn.Parameter(base[0]))
    torch.save(data, tmp_path / 'v.pth')
    got = load_checkpoint(tmp_path / 'v.pth')
    for key in ('view', 't', 'same'):
        assert got[key].stride() == data[key].stride() and torch.equal(got[key], data[key])
    assert got['view'].untyped_storage().data_ptr() == got['same'].untyped_storage().data_ptr()
    assert type(got['param']) is torch.nn.Parameter and torch.equal(got['param'], base[0])


def test_numpy_and_python_values_of_runtime_info(tmp_path):
    values = dict(a=np.float32(1.5), b=np.arange(5, dtype='>i4'), c={1, 2}, d=frozenset('ab'),
                  e=(np.random.get_state(), __import__('random').getstate()), f=b'\x00\xff',
                  g=torch.Size([2, 3]), h=torch.device('cpu'), i=torch.bfloat16)
    torch.save(values, tmp_path / 'n.pth')
    got = load_checkpoint(tmp_path / 'n.pth')
    _same(got, torch.load(tmp_path / 'n.pth', weights_only=False))  # numpy's own reader's result
    assert got['b'].tolist() == [0, 1, 2, 3, 4] and got['a'] == 1.5 and got['c'] == {1, 2}
    assert np.dtype('i4').byteorder == '='  # the '>' was set on a copy, not on numpy's int32


def test_data_pickle_of_python_2_layout(tmp_path):
    """CIFAR's batch files: protocol 2, byte-string keys, a uint8 array."""
    batch = {b'data': np.arange(2 * 12, dtype=np.uint8).reshape(2, 12), b'labels': [3, 7],
             b'batch_label': b'training batch 1 of 5', b'filenames': [b'a.png', b'b.png']}
    (tmp_path / 'data_batch_1').write_bytes(pickle.dumps(batch, protocol=2))
    _same(load_data_pickle(tmp_path / 'data_batch_1'), batch)
    evil = {b'data': Call(eval, '1')}
    (tmp_path / 'evil').write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(UnsafeFileError, match=r'evil: refused: .*builtins.eval'):
        load_data_pickle(tmp_path / 'evil')
    torch.save({'t': torch.zeros(1)}, tmp_path / 'tensor.pth')
    with pytest.raises(CheckpointError, match='not a readable pickle'):
        load_data_pickle(tmp_path / 'tensor.pth')  # a zip, not a pickle


def test_files_that_are_not_files(tmp_path):
    with pytest.raises(CheckpointError, match='is a directory'):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match='file not found'):
        load_backbone(tmp_path / 'missing.pth')
    (tmp_path / 'trunc.pth').write_bytes(b'PK\x03\x04' + b'\x00' * 10)
    with pytest.raises(CheckpointError, match='not a readable torch checkpoint'):
        load_checkpoint(tmp_path / 'trunc.pth')


def test_remote_names_are_refused_before_any_download(monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader

    import mmtransfer.compat  # noqa: F401  (applies the schemes)

    def no_network(*args, **kwargs):
        raise AssertionError('a download was attempted')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    for name in ('https://example.org/r50.pth', 'http://example.org/r50.pth',
                 'torchvision://resnet50', 'open-mmlab://resnet50_caffe', 'mmcls://resnet50',
                 's3://bucket/r50.pth'):
        with pytest.raises(CheckpointError, match='remote checkpoints are not opened'):
            CheckpointLoader.load_checkpoint(name)


def test_the_reader_is_the_pickle_module_torch_sees(tmp_path):
    """Legacy (pre-zip) torch files go through the same reader."""
    buffer = io.BytesIO()
    torch.save({'w': torch.ones(3)}, buffer, _use_new_zipfile_serialization=False)
    (tmp_path / 'legacy.pth').write_bytes(buffer.getvalue())
    assert torch.equal(load_backbone(tmp_path / 'legacy.pth')['w'], torch.ones(3))
