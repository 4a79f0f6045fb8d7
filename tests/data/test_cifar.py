"""CIFAR-10/100 in the official "python version" layout: exact pixels from hand-made pickles,
one-line errors naming the file, planted payloads refused without running, the synthetic
generator's files."""
from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import pytest
import torch

from mmtransfer.cli import run
from mmtransfer.data.cifar import CifarDataset, read_cifar
from mmtransfer.data.imagefolder import DataError
from mmtransfer.data.py2pickle import dumps_py2
from mmtransfer.data.synthetic import write_cifar
from mmtransfer.loading import CheckpointError, UnsafeFileError
from tests.gadgets import GADGETS, Call

CIFAR10_NAMES = [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog', b'horse',
                 b'ship', b'truck']
PER_FILE = 3


def _dump(obj, fmt: str) -> bytes:
    """``python2``: the official files' bytes (cPickle, protocol 2); ``python3``: the same dict
    re-pickled by Python 3 at protocol 2 (``bytes`` as ``_codecs.encode``)."""
    return dumps_py2(obj) if fmt == 'python2' else pickle.dumps(obj, protocol=2)


def _pixels(first: int, n: int) -> np.ndarray:
    """Rows ``first .. first + n`` of a split: ``data[r, c * 1024 + y * 32 + x]`` is
    ``(37 r + 101 c + 7 y + 3 x) mod 256``, the R, G, B planes in turn, each row major."""
    r = np.arange(first, first + n)[:, None]
    k = np.arange(3072)[None]
    c, y, x = k // 1024, k % 1024 // 32, k % 32
    return ((37 * r + 101 * c + 7 * y + 3 * x) % 256).astype(np.uint8)


def _expected_images(n: int) -> np.ndarray:
    """The same formula over ``[n, 3, 32, 32]`` index grids (no reshape of the rows)."""
    r, c, y, x = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32),
                             indexing='ij')
    return ((37 * r + 101 * c + 7 * y + 3 * x) % 256).astype(np.uint8)


def _labels(first, n, classes):
    return [(7 * i + 3) % classes for i in range(first, first + n)]


def write_cifar10(folder, fmt='python2', per_file=PER_FILE):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f'data_batch_{b}' for b in range(1, 6)]):
        batch = {b'batch_label': f'training batch {i + 1} of 5'.encode(),
                 b'labels': _labels(i * per_file, per_file, 10),
                 b'data': _pixels(i * per_file, per_file),
                 b'filenames': [f'img_{j}.png'.encode() for j in range(per_file)]}
        (folder / name).write_bytes(_dump(batch, fmt))
    test = {b'batch_label': b'testing batch 1 of 1', b'labels': _labels(0, per_file, 10),
            b'data': _pixels(0, per_file), b'filenames': [b'x.png'] * per_file}
    (folder / 'test_batch').write_bytes(_dump(test, fmt))
    meta = {b'num_cases_per_batch': per_file, b'label_names': CIFAR10_NAMES, b'num_vis': 3072}
    (folder / 'batches.meta').write_bytes(_dump(meta, fmt))
    return folder


def write_cifar100(folder, fmt='python2', n=7):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ('train', 'test'):
        fine = _labels(0, n, 100)
        batch = {b'filenames': [b'f.png'] * n, b'batch_label': b'training batch 1 of 1',
                 b'fine_labels': fine, b'coarse_labels': [k // 5 for k in fine],
                 b'data': _pixels(0, n)}
        (folder / split).write_bytes(_dump(batch, fmt))
    meta = {b'fine_label_names': [f'fine{k}'.encode() for k in range(100)],
            b'coarse_label_names': [f'coarse{k}'.encode() for k in range(20)]}
    (folder / 'meta').write_bytes(_dump(meta, fmt))
    return folder


@pytest.mark.parametrize('fmt', ['python2', 'python3'])
def test_cifar10_reader_returns_the_exact_pixels_and_labels(tmp_path, fmt):
    folder = write_cifar10(tmp_path / 'cifar-10-batches-py', fmt)
    images, labels, classes = read_cifar(folder, 'train')
    n = 5 * PER_FILE
    assert images.dtype == torch.uint8 and images.shape == (n, 3, 32, 32)
    np.testing.assert_array_equal(images.numpy(), _expected_images(n))
    assert labels.tolist() == _labels(0, n, 10)
    assert classes == tuple(c.decode() for c in CIFAR10_NAMES)
    test_images, test_labels, _ = read_cifar(folder, 'test')
    np.testing.assert_array_equal(test_images.numpy(), _expected_images(PER_FILE))
    assert test_labels.tolist() == _labels(0, PER_FILE, 10)


@pytest.mark.parametrize('fmt', ['python2', 'python3'])
def test_cifar100_reader_uses_the_fine_labels(tmp_path, fmt):
    write_cifar100(tmp_path / 'cifar-100-python', fmt)
    dataset = CifarDataset(str(tmp_path), split='test')     # the folder that holds it
    np.testing.assert_array_equal(dataset.images.numpy(), _expected_images(7))
    assert dataset.labels.tolist() == _labels(0, 7, 100)
    assert dataset.classes == [f'fine{k}' for k in range(100)]
    assert dataset[4] == dict(index=4, labels=_labels(4, 1, 100)[0], bank=dataset.bank_key)


def test_python2_files_use_python2_opcodes_and_the_standard_reader_agrees(tmp_path):
    """The writer of the tests' files against the stdlib reader and the opcodes of cPickle."""
    data = write_cifar10(tmp_path / 'c') / 'data_batch_2'
    raw = data.read_bytes()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert ops[0] == ('PROTO', 2)
    assert ('GLOBAL', 'numpy.core.multiarray _reconstruct') in ops
    assert ('SHORT_BINSTRING', 'data') in ops and ('SHORT_BINSTRING', 'u1') in ops
    assert not any(name == 'GLOBAL' and '_codecs' in arg for name, arg in ops)
    obj = pickle.loads(raw, encoding='bytes')
    assert set(obj) == {b'batch_label', b'labels', b'data', b'filenames'}
    np.testing.assert_array_equal(obj[b'data'], _pixels(PER_FILE, PER_FILE))
    assert obj[b'batch_label'] == b'training batch 2 of 5'


@pytest.mark.parametrize('missing', ['data_batch_3', 'batches.meta', 'test_batch'])
def test_a_missing_file_is_named(tmp_path, missing):
    folder = write_cifar10(tmp_path / 'cifar-10-batches-py')
    (folder / missing).unlink()
    split = 'test' if missing == 'test_batch' else 'train'
    with pytest.raises(DataError) as err:
        read_cifar(folder, split, variant='cifar10')
    assert str(err.value).startswith(f'{folder / missing}: file not found')


def test_a_folder_that_is_not_cifar_names_the_meta_files(tmp_path):
    (tmp_path / 'data_batch_1').write_bytes(b'')
    with pytest.raises(DataError) as err:
        read_cifar(tmp_path)
    assert str(err.value).startswith(f'{tmp_path / "batches.meta"} nor {tmp_path / "meta"}: '
                                     'file not found')
    with pytest.raises(DataError, match='CIFAR folder not found'):
        read_cifar(tmp_path / 'nope')


@pytest.mark.parametrize('change, needle', [
    (lambda b: {**b, b'data': b[b'data'][:, :3000]}, 'uint8 [3, 3000]'),
    (lambda b: {**b, b'data': b[b'data'].astype(np.float32)}, 'float32 [3, 3072]'),
    (lambda b: {**b, b'data': b[b'data'].reshape(3, 3, 32, 32)}, 'uint8 [3, 3, 32, 32]'),
    (lambda b: {**b, b'labels': b[b'labels'][:2]}, "'labels' must hold 3 integer labels"),
    (lambda b: {**b, b'labels': [0, 1, 10]}, 'labels must lie in [0, 10), found 0..10'),
    (lambda b: {k: v for k, v in b.items() if k != b'labels'}, "no 'labels' entry"),
    (lambda b: [b[b'data']], 'a CIFAR file holds a dict, found list'),
])
def test_a_batch_with_wrong_shapes_is_one_line_naming_the_file(tmp_path, change, needle):
    folder = write_cifar10(tmp_path / 'c')
    path = folder / 'data_batch_4'
    path.write_bytes(dumps_py2(change(pickle.loads(path.read_bytes(), encoding='bytes'))))
    with pytest.raises(DataError) as err:
        read_cifar(folder)
    assert str(err.value).startswith(f'{path}: ') and '\n' not in str(err.value)
    assert needle in str(err.value)


def test_a_truncated_file_is_one_line_naming_it(tmp_path):
    folder = write_cifar10(tmp_path / 'c')
    path = folder / 'data_batch_1'
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])                   # a download cut short
    with pytest.raises(CheckpointError) as err:
        read_cifar(folder)
    assert str(err.value).startswith(f'{path}: not a readable pickle')


def _payloads(marker):
    """Pickles that touch ``marker`` (or would) when a plain ``pickle.load`` opens them."""
    shell = Call(os.system, f'touch {marker}')
    code = f"open({str(marker)!r}, 'w').close()"
    yield 'os.system', pickle.dumps({b'data': shell}, protocol=2)
    yield 'builtins.exec', pickle.dumps({b'data': Call(exec, code)}, protocol=2)
    yield 'protocol 0', f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    for name, gadget in GADGETS.items():
        yield name, pickle.dumps({b'data': gadget(marker)}, protocol=2)


def test_planted_payloads_are_refused_in_one_line_and_never_run(tmp_path):
    marker = tmp_path / 'ran'
    folder = write_cifar10(tmp_path / 'cifar-10-batches-py')
    path = folder / 'data_batch_1'
    payloads = list(_payloads(marker))
    assert len(payloads) == 3 + len(GADGETS)
    for name, payload in payloads:
        path.write_bytes(payload)
        with pytest.raises(UnsafeFileError) as err:
            CifarDataset(str(folder))
        line = str(err.value)
        assert line.startswith(f'{path}: refused: ') and '\n' not in line, name
        assert not marker.exists(), name
    pickle.loads(payloads[0][1])  # the payload is real: a plain unpickler runs it
    assert marker.exists()


def test_the_tools_turn_a_payload_into_one_error_line_and_exit_2(tmp_path, capsys):
    marker = tmp_path / 'ran'
    folder = write_cifar10(tmp_path / 'c')
    (folder / 'data_batch_1').write_bytes(next(_payloads(marker))[1])
    assert run(lambda argv: CifarDataset(str(folder)) and 0, []) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'error: {folder / "data_batch_1"}: refused')
    assert 'posix.system' in err and not marker.exists()


@pytest.mark.parametrize('variant, files, classes', [
    ('cifar10', {'data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4',
                 'data_batch_5', 'test_batch', 'batches.meta'}, 10),
    ('cifar100', {'train', 'test', 'meta'}, 100),
])
def test_the_synthetic_generator_writes_the_official_layout(tmp_path, variant, files, classes):
    per_class = 1 if classes == 100 else 2
    folder = write_cifar(tmp_path, variant, train_per_class=per_class, test_per_class=1)
    assert {p.name for p in folder.iterdir()} == files
    raw = pickle.loads((folder / ('test_batch' if classes == 10 else 'test')).read_bytes(),
                       encoding='bytes')
    label_key = b'labels' if classes == 10 else b'fine_labels'
    assert raw[b'data'].dtype == np.uint8 and raw[b'data'].shape == (classes, 3072)
    assert sorted(raw[label_key]) == list(range(classes))
    train = CifarDataset(str(tmp_path), 'train')
    assert len(train) == classes * per_class and len(train.classes) == classes
    assert torch.bincount(train.labels).tolist() == [per_class] * classes
    again = write_cifar(tmp_path / 'again', variant, train_per_class=per_class, test_per_class=1)
    assert (again / 'meta' if classes == 100 else again / 'batches.meta').read_bytes() == \
        (folder / 'meta' if classes == 100 else folder / 'batches.meta').read_bytes()
    assert torch.equal(CifarDataset(str(again), 'train').images, train.images)
