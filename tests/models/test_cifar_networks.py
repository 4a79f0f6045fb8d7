"""The CIFAR / TinyImageNet networks (PreActResNet-18, WRN16-8): block shapes, the block split,
the published parameter counts, every method training on them, and telling them from weights."""
from __future__ import annotations

import random

import pytest
import torch

from mmtransfer.analysis import encoder_state_dict, infer_encoder_args, load_encoder
from mmtransfer.export import backbone_state_dict, save_backbone
from mmtransfer.loading import load_backbone
from mmtransfer.models import (
    METHODS,
    MixPretrainer,
    PreActResNetEncoder,
    WideResNetEncoder,
    build_encoder,
)
from mmtransfer.models.preact_resnet import PreActBlock
from mmtransfer.models.wide_resnet import WideBasic

# Narrow versions of the two networks (same layout and code, fewer channels) for CPU speed.
NARROW = [('preactresnet18', 8), ('wrn16_1', None)]

# (channels, side / input side) of blocks 0..4, written from the definitions: PreActResNet-18
# strides 1, 2, 2, 2 after a stride-1 stem; WRN16-8 strides 1, 2, 2 and block 4 = BN + ReLU.
BLOCKS = {
    'preactresnet18': [(3, 1), (64, 1), (128, 2), (256, 4), (512, 8)],
    'wrn16_8': [(3, 1), (128, 1), (256, 2), (512, 4), (512, 4)],
}


def _randomise_bn(module: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine weights, so that a skipped or repeated BN shows."""
    g = torch.Generator().manual_seed(3)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            with torch.no_grad():
                bn.running_mean.copy_(torch.rand(bn.num_features, generator=g) - 0.5)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.bias.copy_(torch.rand(bn.num_features, generator=g) - 0.5)


@pytest.mark.parametrize('arch', list(BLOCKS))
@pytest.mark.parametrize('size', [32, 64])
def test_every_block_has_the_published_shape(arch, size):
    with torch.device('meta'):
        encoder = build_encoder(arch)
        x = torch.empty(2, 3, size, size)
    shapes = [tuple(encoder(x, 0, k).shape) for k in range(5)]
    assert shapes == [(2, c, size // s, size // s) for c, s in BLOCKS[arch]]
    assert encoder.out_channels == BLOCKS[arch][4][0]


@pytest.mark.parametrize('arch, grid', [('preactresnet18', 8), ('wrn16_8', 16)])
def test_last_stride_one_doubles_the_grid_with_the_same_weights(arch, grid):
    with torch.device('meta'):
        strided, unstrided = build_encoder(arch), build_encoder(arch, last_stride=1)
        z = unstrided(torch.empty(1, 3, 32, 32))
    assert z.shape[-2:] == (grid, grid)
    assert {k: v.shape for k, v in strided.state_dict().items()} == {
        k: v.shape for k, v in unstrided.state_dict().items()}


@pytest.mark.parametrize('arch, width', NARROW)
@pytest.mark.parametrize('train', [False, True])
def test_entering_at_block_k_and_leaving_at_4_is_the_full_forward(arch, width, train):
    torch.manual_seed(0)
    encoder = build_encoder(arch, width=width)
    _randomise_bn(encoder)
    encoder.train(train)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        full = encoder(x)
        for k in range(5):
            for j in range(k, 5):  # 0 -> k -> j -> 4, any split point
                torch.testing.assert_close(encoder(encoder(encoder(x, 0, k), k, j), j), full)


def test_wrn_block_4_is_the_final_bn_relu_of_block_3():
    """Block 4 is what the references pool: ``relu(bn1(layer3 output))`` (PuzzleMix, AlignMixup)."""
    torch.manual_seed(0)
    encoder = build_encoder('wrn16_1').eval()
    _randomise_bn(encoder)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h3 = encoder(x, 0, 3)
        bn = encoder.bn1
        expected = ((h3 - bn.running_mean[:, None, None])
                    / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
                    * bn.weight[:, None, None] + bn.bias[:, None, None]).clamp_min(0)
        torch.testing.assert_close(encoder(h3, 3), expected, rtol=1e-5, atol=1e-5)
    assert encoder.bn1.momentum == 0.9  # as both references


def _zero_residual(block: torch.nn.Module) -> None:
    with torch.no_grad():
        block.conv2.weight.zero_()
        if block.conv2.bias is not None:
            block.conv2.bias.zero_()


def test_shortcuts_are_the_references():
    """With the residual branch zeroed a block is its shortcut: ``x`` itself for a same-shape
    block (He et al.'s pre-activation, PuzzleMix; AlignMixup's PreActBlock would give
    ``relu(bn1(x))``), else a strided 1x1 convolution of ``relu(bn1(x))`` (PreActBlock) or of
    ``x`` (WideBasic, with bias)."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    for block in (PreActBlock(8, 8), WideBasic(8, 8), PreActBlock(8, 16, 2), WideBasic(8, 16, 2)):
        _randomise_bn(block)
        _zero_residual(block.eval())
        if not len(block.shortcut):
            expected = x
        elif isinstance(block, PreActBlock):
            bn = block.bn1
            pre = ((x - bn.running_mean[:, None, None])
                   / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
                   * bn.weight[:, None, None] + bn.bias[:, None, None]).clamp_min(0)
            expected = torch.nn.functional.conv2d(pre, block.shortcut[0].weight, stride=2)
        else:
            conv = block.shortcut[0]
            expected = torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=2)
        with torch.no_grad():
            torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def _preact18_params(width: int, classes: int) -> int:
    """PreActResNet-18 parameters by hand: stem 3x3 conv, blocks (BN, 3x3, BN, 3x3 [, 1x1])."""
    total, cin = 27 * width, width
    for k in range(4):
        c = width * 2 ** k
        for _ in range(2):
            total += 2 * cin + 9 * cin * c + 2 * c + 9 * c * c + (cin * c if cin != c else 0)
            cin = c
    return total + cin * classes + classes


def _wrn_params(depth: int, k: int, classes: int) -> int:
    """WRN-depth-k parameters by hand: convolutions with biases, final BN, linear head."""
    total, cin = 27 * 16 + 16, 16
    for g in range(3):
        c = 16 * k * 2 ** g
        for _ in range((depth - 4) // 6):
            total += 2 * cin + 9 * cin * c + c + 2 * c + 9 * c * c + c
            total += cin * c + c if cin != c else 0
            cin = c
    return total + 2 * cin + cin * classes + classes


# Published counts, measured by running the reference definitions with a 10-class head:
# PuzzleMix models/preresnet.py preactresnet18(10) (= manifold mixup's): 11,171,146 ("11.17M");
# PuzzleMix models/wide_resnet.py Wide_ResNet(16, 8, 10) (= AlignMixup's wrn16_8): 10,965,866
# (Zagoruyko & Komodakis 2016, Table: WRN-16-8, 11.0M).
@pytest.mark.parametrize('arch, classes, published', [
    ('preactresnet18', 10, 11_171_146),
    ('wrn16_8', 10, 10_965_866),
])
def test_parameter_counts_are_the_published_ones(arch, classes, published):
    with torch.device('meta'):
        model = MixPretrainer(arch, num_classes=classes)
    count = sum(p.numel() for p in model.student.parameters())
    by_hand = _preact18_params(64, classes) if arch == 'preactresnet18' else _wrn_params(16, 8,
                                                                                          classes)
    assert count == by_hand == published


@pytest.mark.parametrize('arch, width', [('preactresnet18', 16), ('wrn16_2', None),
                                         ('wrn28_10', None)])
def test_other_widths_and_depths_follow_the_same_formula(arch, width):
    with torch.device('meta'):
        encoder = build_encoder(arch, width=width)
    head = 10 * (encoder.out_channels + 1)
    expected = (_preact18_params(width, 10) if arch == 'preactresnet18'
                else _wrn_params(*map(int, arch[3:].split('_')), 10))
    assert sum(p.numel() for p in encoder.parameters()) + head == expected


def _batch(m=4, size=32, classes=5):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(m, 3, size, size, generator=g), torch.randint(0, classes, (m,),
                                                                      generator=g),
            torch.randn(m, 3, size, size, generator=g))


def train_two_steps(model, x, y, x2, lr: float = 0.1) -> set[str]:
    """Two SGD steps of ``model`` (and its teacher's EMA) on one batch, each loss finite;
    returns the names of the floating-point state entries that moved."""
    optimizer = torch.optim.SGD(model.student.parameters(), lr=lr)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    for _ in range(2):
        losses = model(x, y, x2, mode='loss')
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher()
    after = model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.parametrize('arch, width', NARROW)
def test_every_method_trains_two_steps(arch, width, method):
    random.seed(0)
    torch.manual_seed(0)
    model = MixPretrainer(arch, num_classes=5, width=width, mix=dict(method=method, n=8)).train()
    before = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    moved = train_two_steps(model, *_batch())
    student = {k for k in before if k.startswith('student.') and 'running' not in k}
    assert student <= moved  # every student weight moved (the head and every conv and BN)
    if model.teacher is not None:
        assert any(k.startswith('teacher.') for k in moved)


CASES = ([('manifold_mixup', dict(manifold_blocks=(k,))) for k in range(4)]
         + [('multimix', dict(prob=1.0, block=k)) for k in range(5)]
         + [('dense', dict(prob=1.0, block=k)) for k in range(1, 5)]
         + [('dense', dict(prob=1.0, dense_pool=2))])


@pytest.mark.parametrize('method, mix', CASES, ids=lambda v: str(v))
@pytest.mark.parametrize('arch, width', NARROW)
def test_every_mixing_block_gives_a_finite_loss_and_a_gradient(arch, width, method, mix):
    """Manifold mixup at blocks 0..3, MultiMix at 0..4, dense MultiMix at 1..4 (and the dense
    grid pooled 2x2) run on both networks unchanged."""
    random.seed(0)
    torch.manual_seed(0)
    model = MixPretrainer(arch, num_classes=5, width=width, mix=dict(method=method, n=8, **mix))
    x, y, _ = _batch()
    loss = model(x, y, mode='loss')['loss_cls']
    assert torch.isfinite(loss)
    loss.backward()
    assert model.student.encoder.conv1.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ from the weights


@pytest.mark.parametrize('arch, width', [('preactresnet18', 64), ('preactresnet18', 8),
                                         ('wrn16_8', None), ('wrn16_1', None),
                                         ('wrn28_10', None), ('resnet18', 64), ('resnet50', 32)])
def test_the_architecture_is_told_from_the_weights(arch, width):
    with torch.device('meta'):
        state = build_encoder(arch, width=width).state_dict()
    assert infer_encoder_args(state) == dict(arch=arch, width=width)


def test_a_given_arch_is_kept_and_a_wrong_one_does_not_load():
    state = build_encoder('preactresnet18', width=8).state_dict()
    assert infer_encoder_args(state, 'preactresnet18') == dict(arch='preactresnet18', width=8)
    args = infer_encoder_args(state, 'wrn16_1')
    with pytest.raises(ValueError, match='do not fit'):
        load_encoder(build_encoder(**args), state)


def test_unknown_names_and_layouts_are_one_line_errors():
    with pytest.raises(ValueError, match=r"arch: unknown encoder 'vgg16'; choose from resnet18.*"
                                         r'preactresnet18, wrn16_8'):
        build_encoder('vgg16')
    with pytest.raises(ValueError, match="arch: 'wrn15_8' is not a wide ResNet"):
        build_encoder('wrn15_8')
    with pytest.raises(ValueError, match='width: wrn16_8 takes its widen factor from its name'):
        build_encoder('wrn16_8', width=32)
    with pytest.raises(ValueError, match='width must be a multiple of 8'):
        PreActResNetEncoder(width=12)
    with pytest.raises(ValueError, match='last_stride must be 1 or 2'):
        WideResNetEncoder(last_stride=3)
    with torch.device('meta'):
        state = build_encoder('preactresnet18', width=8).state_dict()
    with pytest.raises(ValueError, match='cannot tell the PreActResNet'):
        infer_encoder_args({k: v for k, v in state.items() if not k.startswith('layer2.1.')})


@pytest.mark.parametrize('arch, width', NARROW)
def test_tools_read_the_training_checkpoint_and_the_exported_backbone(arch, width, tmp_path):
    """What evaluate.py and analyze_embeddings.py do, on a distillation checkpoint of either
    network and on the backbone the export hook writes: the same network, loaded strictly."""
    from tools.analyze_embeddings import build_encoder as analyze_encoder
    from tools.evaluate import build_classifier

    torch.manual_seed(0)
    model = MixPretrainer(arch, num_classes=5, width=width, mix=dict(method='dense_distill'))
    _randomise_bn(model.student)
    state = model.state_dict()
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'iter_2.pth')
    paths = save_backbone(backbone_state_dict(state, 'teacher'), tmp_path / 'backbone.pth')
    assert len(paths) == 2
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        net, inferred = build_classifier(str(tmp_path / 'iter_2.pth'), 'student', None, 5)
        assert inferred == arch
        torch.testing.assert_close(net(x), model.student(x))
        for path, which in ((tmp_path / 'iter_2.pth', 'student'),
                            (tmp_path / 'backbone.safetensors', 'backbone'),
                            (tmp_path / 'backbone.pth', 'backbone')):
            encoder, source, inferred = analyze_encoder(str(path), 'student', None)
            assert (source, inferred) == (which, arch)
            reference = model.student if which == 'student' else model.teacher.module
            torch.testing.assert_close(encoder.eval()(x), reference.encoder(x))
    plain, source = encoder_state_dict(load_backbone(tmp_path / 'backbone.safetensors'))
    assert source == 'backbone' and set(plain) == set(model.student.encoder.state_dict())
