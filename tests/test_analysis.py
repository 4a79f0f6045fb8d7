"""mmtransfer.analysis (alignment, uniformity, PCA, encoder loading) and its CLI
tools/analyze_embeddings.py, against hand-computed values and naive double loops."""
import importlib.util
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import mmtransfer.data  # noqa: F401  (registers MixPretrainer's data preprocessor)
from mmtransfer.analysis import (
    alignment,
    encoder_state_dict,
    infer_resnet_arch,
    load_encoder,
    pca_2d,
    per_class_indices,
    pooled_embeddings,
    uniformity,
)
from mmtransfer.models import MixPretrainer, ResNetEncoder

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('analyze_embeddings',
                                               REPO / 'tools' / 'analyze_embeddings.py')
analyze = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(analyze)


def naive_alignment(z, labels, alpha=2.0):
    u = z / z.norm(dim=1, keepdim=True)
    d = [float((u[i] - u[j]).norm()) ** alpha
         for i, j in itertools.combinations(range(len(z)), 2) if labels[i] == labels[j]]
    return sum(d) / len(d)


def naive_uniformity(z, t=2.0):
    u = z / z.norm(dim=1, keepdim=True)
    k = [math.exp(-t * float((u[i] - u[j]).norm()) ** 2)
         for i, j in itertools.combinations(range(len(z)), 2)]
    return math.log(sum(k) / len(k))


# ------------------------------------------------------------------------------ the measures


def test_square_on_the_circle_by_hand():
    # 4 unit vectors at 0, 90, 180, 270 degrees: squared distances 2 (neighbours) and 4 (opposite)
    z = torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]], dtype=torch.float64)
    # classes {0, 1} (a neighbour pair, d^2 = 2) and {2, 3} (d^2 = 2)
    assert alignment(z, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(2.0)
    # classes {0, 2} and {1, 3}: opposite points, d^2 = 4; with alpha = 1, d = 2
    assert alignment(z, torch.tensor([0, 1, 0, 1])).item() == pytest.approx(4.0)
    assert alignment(z, torch.tensor([0, 1, 0, 1]), alpha=1).item() == pytest.approx(2.0)
    # 6 pairs: 4 at d^2 = 2, 2 at d^2 = 4
    expected = math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6)
    assert uniformity(z).item() == pytest.approx(expected)
    assert uniformity(z, t=1).item() == pytest.approx(math.log((4 * math.exp(-2)
                                                                + 2 * math.exp(-4)) / 6))


def test_embeddings_are_normalised_first():
    z = torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]], dtype=torch.float64)
    scale = torch.tensor([[3.], [0.5], [7.], [2.]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    assert alignment(z * scale, labels).item() == pytest.approx(alignment(z, labels).item())
    assert uniformity(z * scale).item() == pytest.approx(uniformity(z).item())


@pytest.mark.parametrize('chunk_size', [1, 3, 4096])
def test_matches_naive_double_loop(chunk_size):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(23, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (23,), generator=g)
    for alpha in (2.0, 1.0, 3.0):
        assert alignment(z, labels, alpha, chunk_size).item() == pytest.approx(
            naive_alignment(z, labels, alpha), rel=1e-9)
    for t in (2.0, 0.5):
        assert uniformity(z, t, chunk_size).item() == pytest.approx(
            naive_uniformity(z, t), rel=1e-9)


def test_perfectly_aligned_classes_give_zero():
    centres = torch.randn(3, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    z = centres[labels] * torch.rand(8, 1, dtype=torch.float64).add(0.5)  # same direction
    assert alignment(z, labels).item() == pytest.approx(0.0, abs=1e-12)
    # a single stray point makes it positive
    z[0] = -z[0]
    assert alignment(z, labels).item() > 0


def test_uniformity_of_identical_points_is_zero_and_drops_when_spread():
    same = torch.ones(6, 4, dtype=torch.float64)
    assert uniformity(same).item() == pytest.approx(0.0, abs=1e-12)
    angles = torch.linspace(0, 2 * math.pi, 7, dtype=torch.float64)[:-1]
    circle = torch.stack([angles.cos(), angles.sin()], 1)
    tight = torch.stack([torch.ones(6, dtype=torch.float64), angles / 50], 1)  # a narrow arc
    assert uniformity(circle).item() < uniformity(tight).item() < 0
    assert uniformity(circle).item() >= -4 * 2  # bounded below by -4t


def test_no_same_class_pair_is_an_error():
    with pytest.raises(ValueError, match='at least 2 embeddings'):
        alignment(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='N >= 2'):
        uniformity(torch.randn(1, 4))


@pytest.mark.parametrize('n, d', [(40, 6), (60, 300)])
def test_pca_matches_numpy_svd(n, d):
    g = torch.Generator().manual_seed(1)
    spectrum = torch.cat([torch.tensor([5., 3.]), torch.full((d - 2,), 0.3)]).double()
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * spectrum + 2.0  # off-centre
    points = pca_2d(z).numpy()
    x = z.numpy() - z.numpy().mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    reference = x @ vt[:2].T
    for k in range(2):  # principal axes are defined up to sign
        sign = np.sign(points[:, k] @ reference[:, k])
        np.testing.assert_allclose(points[:, k], sign * reference[:, k], rtol=1e-6, atol=1e-6)
    assert points[:, 0].var() > points[:, 1].var()
    np.testing.assert_array_equal(points, pca_2d(z).numpy())  # reproducible


# ------------------------------------------------------------------------------ the encoder


@pytest.mark.parametrize('arch', ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'])
def test_infer_arch_from_keys(arch):
    with torch.device('meta'):
        state = ResNetEncoder(arch).state_dict()
    assert infer_resnet_arch(state) == arch


def test_infer_arch_unknown_layout():
    state = {'conv1.weight': torch.zeros(1), 'layer1.0.conv1.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='pass --arch'):
        infer_resnet_arch(state)


def test_encoder_state_dict_from_every_layout():
    state = MixPretrainer('resnet18', num_classes=5, mix=dict(method='distill')).state_dict()
    student, source = encoder_state_dict({'state_dict': state, 'meta': {}})
    assert source == 'student' and 'conv1.weight' in student and 'head.weight' not in student
    assert set(student) == set(ResNetEncoder('resnet18').state_dict())
    teacher, source = encoder_state_dict({'state_dict': state}, 'teacher')
    assert source == 'teacher' and set(teacher) == set(student)
    plain = dict(student, **{'fc.weight': torch.zeros(1), 'fc.bias': torch.zeros(1)})
    backbone, source = encoder_state_dict(plain, 'teacher')  # --which ignored for a backbone
    assert source == 'backbone' and set(backbone) == set(student)
    with pytest.raises(ValueError, match='no ResNet encoder'):
        encoder_state_dict({'state_dict': {'head.weight': torch.zeros(1)}})
    no_teacher = {k: v for k, v in state.items() if not k.startswith('teacher.')}
    with pytest.raises(ValueError, match='no teacher backbone'):
        encoder_state_dict({'state_dict': no_teacher}, 'teacher')


def test_load_encoder_is_strict():
    state = ResNetEncoder('resnet18').state_dict()
    encoder = load_encoder(ResNetEncoder('resnet18'), state)
    assert torch.equal(encoder.conv1.weight, state['conv1.weight'])
    with pytest.raises(ValueError, match="missing 1 keys .*'bn1.bias'"):
        load_encoder(ResNetEncoder('resnet18'), {k: v for k, v in state.items() if k != 'bn1.bias'})
    with pytest.raises(ValueError, match='unexpected 1 keys'):
        load_encoder(ResNetEncoder('resnet18'), dict(state, extra=torch.zeros(1)))
    state['conv1.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match="wrong shape for 1 keys .*'conv1.weight'"):
        load_encoder(ResNetEncoder('resnet18'), state)


def test_per_class_indices_against_a_loop():
    labels = torch.tensor([2, 0, 1, 2, 0, 2, 3, 0, 2, 1])
    classes = torch.tensor([0, 2, 3])
    for max_per_class in (None, 1, 2, 3):
        expected, seen = [], {}
        for i, y in enumerate(labels.tolist()):
            if y in classes.tolist() and seen.get(y, 0) < (max_per_class or 99):
                expected.append(i)
                seen[y] = seen.get(y, 0) + 1
        assert per_class_indices(labels, classes, max_per_class).tolist() == expected


def test_pooled_embeddings_are_block4_averages():
    encoder = ResNetEncoder('resnet18').eval()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    batches = [dict(inputs=images[:3], labels=torch.tensor([0, 1, 0])),
               dict(inputs=images[3:], labels=torch.tensor([1, 1]))]
    scale = lambda d: dict(d, inputs=d['inputs'].float() / 255)  # noqa: E731
    z, labels = pooled_embeddings(encoder, batches, scale)
    with torch.no_grad():
        expected = encoder(images.float() / 255).mean((2, 3))
    assert z.shape == (5, 512) and labels.tolist() == [0, 1, 0, 1, 1]
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A freshly initialised resnet18 encoder as backbone.pth and as an mmengine-like checkpoint."""
    folder = tmp_path_factory.mktemp('ckpt')
    torch.manual_seed(0)
    state = ResNetEncoder('resnet18').state_dict()
    torch.save(state, folder / 'backbone.pth')
    torch.save({'state_dict': {'student.encoder.' + k: v for k, v in state.items()}, 'meta': {}},
               folder / 'epoch_1.pth')
    return folder


def _cli(*argv) -> int:
    """Exit status of the CLI, as the shell would see it (argparse exits with SystemExit)."""
    try:
        return analyze.run(analyze.main, [str(a) for a in argv])
    except SystemExit as done:
        return done.code


def _fast(demo_root, out_dir):
    return ['--data-root', demo_root / 'cls', '--size', 64, '--max-per-class', 3, '--device',
            'cpu', '--workers', 0, '--batch-size', 32, '--out-dir', out_dir]


@pytest.mark.parametrize('name, which', [('backbone.pth', 'backbone'), ('epoch_1.pth', 'student')])
def test_cli_end_to_end(demo_root, checkpoints, tmp_path, capsys, name, which):
    out = tmp_path / 'out'
    assert _cli(checkpoints / name, *_fast(demo_root, out)) == 0
    metrics = json.loads((out / 'embeddings_metrics.json').read_text())
    assert metrics['which'] == which and metrics['arch'] == 'resnet18'
    assert metrics['num_images'] == 30 and len(metrics['classes']) == 10
    assert metrics['checkpoint'].endswith(name)
    assert 0 <= metrics['alignment'] <= 4 and -8 <= metrics['uniformity'] <= 0
    assert all(math.isfinite(metrics[k]) for k in ('alignment', 'uniformity'))
    png = (out / 'embeddings_pca.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    from PIL import Image
    with Image.open(out / 'embeddings_pca.png') as img:
        img.verify()
    printed = capsys.readouterr().out
    assert f"alignment  {metrics['alignment']:.4f}" in printed
    assert f"uniformity {metrics['uniformity']:.4f}" in printed
    assert not [p for p in out.iterdir() if p.name.startswith('.tmp-')]


def test_cli_two_checkpoint_layouts_agree(demo_root, checkpoints, tmp_path):
    results = []
    for name in ('backbone.pth', 'epoch_1.pth'):
        out = tmp_path / name
        assert _cli(checkpoints / name, *_fast(demo_root, out), '--classes', 4) == 0
        results.append(json.loads((out / 'embeddings_metrics.json').read_text()))
    assert results[0]['num_images'] == 12 and len(results[0]['classes']) == 4
    for key in ('alignment', 'uniformity'):
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-6)


def test_cli_errors(demo_root, checkpoints, tmp_path, capsys):
    out = tmp_path / 'out'

    def error_of(*argv):
        assert _cli(*argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: ')
        return lines[0]

    missing = tmp_path / 'nope.pth'
    assert str(missing) in error_of(missing, *_fast(demo_root, out))
    assert 'no teacher backbone' in error_of(checkpoints / 'epoch_1.pth', '--which', 'teacher',
                                             *_fast(demo_root, out))
    head_only = tmp_path / 'head.pth'
    torch.save({'state_dict': {'student.head.weight': torch.zeros(2, 2)}}, head_only)
    message = error_of(head_only, *_fast(demo_root, out))
    assert str(head_only) in message and 'no ResNet encoder' in message
    no_root = tmp_path / 'no_data'
    assert str(no_root) in error_of(checkpoints / 'backbone.pth',
                                    *_fast(demo_root, out)[2:], '--data-root', no_root)
    singles = tmp_path / 'singles' / 'val'  # two classes of one image each
    image = next((demo_root / 'cls' / 'val').glob('*/*.png'))
    for cls in ('a', 'b'):
        (singles / cls).mkdir(parents=True)
        (singles / cls / 'x.png').write_bytes(image.read_bytes())
    assert 'fewer than 2 images' in error_of(checkpoints / 'backbone.pth',
                                             *_fast(demo_root, out)[2:], '--data-root',
                                             singles.parent)
    assert not out.exists()  # nothing written by any failing run


def test_cli_arch_mismatch_and_bad_flag(demo_root, checkpoints, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _cli(checkpoints / 'backbone.pth', '--arch', 'resnet50', *_fast(demo_root, out)) == 2
    err = capsys.readouterr().err
    assert 'backbone.pth' in err and 'do not fit' in err
    assert _cli(checkpoints / 'backbone.pth', *_fast(demo_root, out), '--max-per-class', 1) == 2
    assert '--max-per-class' in capsys.readouterr().err
    assert not out.exists()


def test_cli_help_has_an_example(capsys):
    assert _cli('--help') == 0
    text = capsys.readouterr().out
    assert 'example' in text and 'tools/analyze_embeddings.py' in text and '--data-root' in text
