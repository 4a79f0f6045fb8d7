"""The pretraining model: encoder split, linear head, EMA teacher, every method's loss."""
from __future__ import annotations

import random
import uuid

import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmengine.logging import MessageHub

from mmtransfer import mixing
from mmtransfer.data import MultiViewDataPreprocessor
from mmtransfer.engine import Accuracy
from mmtransfer.models import (
    METHODS,
    EMATeacher,
    LinearHead,
    MixConfigError,
    MixPretrainer,
    ResNetEncoder,
)


def _model(method, **mix):
    torch.manual_seed(0)
    return MixPretrainer(arch='resnet18', num_classes=5, mix=dict(method=method, n=12, **mix))


def _batch(m=6, size=64):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(m, 3, size, size, generator=g), torch.randint(0, 5, (m,), generator=g),
            torch.randn(m, 3, size, size, generator=g))


def test_encoder_has_torchvision_names_and_splits_at_any_block():
    enc = ResNetEncoder('resnet18').eval()
    tv_keys = set(torchvision.models.resnet18().state_dict()) - {'fc.weight', 'fc.bias'}
    assert set(enc.state_dict()) == tv_keys
    x = torch.randn(2, 3, 64, 64)
    full = enc(x)
    assert full.shape == (2, 512, 2, 2)
    for k in range(5):
        torch.testing.assert_close(enc(enc(x, 0, k), k), full)


def test_linear_head_on_dense_embeddings_is_a_1x1_convolution():
    head = LinearHead(8, 3)
    z = torch.randn(2, 8, 5)
    expected = F.conv1d(z, head.weight[:, :, None], head.bias)
    torch.testing.assert_close(head(z), expected)
    torch.testing.assert_close(head(z[:, :, 0]), expected[:, :, 0])


def test_ema_teacher_update_is_the_convex_step_and_copies_buffers():
    student = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    teacher = EMATeacher(student, momentum=0.25)
    old = [p.clone() for p in teacher.module.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(7.0)
    teacher.update_parameters(student)
    for t, o, s in zip(teacher.module.parameters(), old, student.parameters(), strict=False):
        torch.testing.assert_close(t, 0.75 * o + 0.25 * s)
    assert torch.equal(teacher.module[1].running_mean, torch.full((2,), 7.0))
    teacher.train()
    assert not teacher.module.training and not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize('method', list(METHODS))
def test_every_method_gives_a_finite_loss_whose_gradient_reaches_the_encoder(method):
    model = _model(method).train()
    x, y, x2 = _batch()
    losses = model(x, y, x2, mode='loss')
    assert set(losses) == ({'loss_cls', 'loss_distill'} if 'distill' in method else {'loss_cls'})
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grad = model.student.encoder.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    if model.teacher is not None:
        assert all(p.grad is None for p in model.teacher.parameters())


def _fixed_lambda(monkeypatch, lam):
    monkeypatch.setattr(mixing, 'sample_lambda', lambda m, n, alpha, **kw: lam)
    monkeypatch.setattr(mixing, 'sample_lambda_dense', lambda m, n, r, alpha, **kw: lam)


def test_multimix_loss_equals_the_reference_path(monkeypatch):
    """Fast path (mix m logits, gather at labels) == eq. 6-7 on embeddings + soft CE."""
    model = _model('multimix', prob=1.0).eval()
    x, y, _ = _batch()
    lam = mixing.sample_lambda(6, 12, generator=torch.Generator().manual_seed(3))
    _fixed_lambda(monkeypatch, lam)
    loss = model.loss(x, y)['loss_cls']
    z = model.student.encoder(x).mean((2, 3))
    z_mix, y_mix = mixing.multimix(z, F.one_hot(y, 5).float(), lam)
    expected = -(y_mix * model.student.head(z_mix).log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_dense_loss_equals_the_reference_path(monkeypatch):
    """Fast path == dense_multimix of the embeddings, head as 1x1 conv, dense CE (eq. 11-14)."""
    model = _model('dense', prob=1.0).eval()
    x, y, _ = _batch()
    lam = mixing.sample_lambda_dense(6, 12, 4, generator=torch.Generator().manual_seed(3))
    _fixed_lambda(monkeypatch, lam)
    loss = model.loss(x, y)['loss_cls']
    z = model.student.encoder(x).flatten(2)                               # [m, 512, 4]
    attn = mixing.spatial_attention(z, u='gap', h='relu_l1')
    z_mix, y_mix, s = mixing.dense_multimix(z, F.one_hot(y, 5).float(), lam, attn)
    expected = mixing.dense_cross_entropy(model.student.head(z_mix), y_mix, s)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['distill', 'dense_distill'])
def test_gamma_one_removes_the_teacher_from_the_loss(method):
    x, y, x2 = _batch()
    losses = []
    for perturb in (False, True):
        model = _model(method, gamma=1.0).train()
        if perturb:
            with torch.no_grad():
                for p in model.teacher.parameters():
                    p.add_(torch.randn_like(p))
        torch.manual_seed(5)
        import random
        random.seed(5)
        out = model(x, y, x2, mode='loss')
        assert out['loss_distill'] == 0
        losses.append(sum(out.values()))
    torch.testing.assert_close(losses[0], losses[1])


def test_distillation_target_is_the_mixed_teacher_prediction(monkeypatch):
    """gamma = 0 leaves H(P~', P~): the teacher's logits on view 2, mixed with the same Lambda."""
    model = _model('distill', prob=1.0, gamma=0.0).eval()
    x, y, x2 = _batch()
    lam = mixing.sample_lambda(6, 12, generator=torch.Generator().manual_seed(4))
    _fixed_lambda(monkeypatch, lam)
    loss = model.loss(x, y, x2)['loss_distill']
    student = model.student.head(lam.t() @ model.student.encoder(x).mean((2, 3)))
    teacher = model.teacher.module
    target = (lam.t() @ teacher.head(teacher.encoder(x2).mean((2, 3)))).softmax(1)
    expected = -(target * student.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('mix, key', [
    (dict(method='nope'), 'method'), (dict(n=0), 'mix.n'), (dict(alpha=0.0), 'mix.alpha'),
    (dict(alpha=(2.0, 1.0)), 'inverted'), (dict(gamma=1.5), 'mix.gamma'),
    (dict(block=5), 'mix.block'), (dict(attention_u='foo'), 'mix.attention_u'),
    (dict(dense_resolution=0), 'mix.dense_resolution'), (dict(bogus=1), 'bogus'),
    (dict(start_iter=-1), 'mix.start_iter'), (dict(start_iter=2.5), 'mix.start_iter'),
    (dict(start_iter='10'), 'mix.start_iter'),
])
def test_bad_mixing_options_name_the_key(mix, key):
    with pytest.raises(MixConfigError, match=key):
        MixPretrainer(arch='resnet18', num_classes=5, mix=mix)


def test_dense_resolution_larger_than_the_feature_map_is_an_error():
    model = _model('dense', prob=1.0, dense_resolution=3)     # 64 px -> 2x2 feature map
    x, y, _ = _batch()
    with pytest.raises(ValueError, match='dense_resolution=3'):
        model.loss(x, y)


def test_preprocessor_normalises_both_views():
    pre = MultiViewDataPreprocessor(mean=(10, 20, 30), std=(2, 4, 5))
    x = torch.full((1, 3, 2, 2), 50, dtype=torch.uint8)
    out = pre(dict(inputs=x, inputs2=x, labels=torch.tensor([1])))
    expected = torch.tensor([20.0, 7.5, 4.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(out['inputs'], expected)
    torch.testing.assert_close(out['inputs2'], expected)


def test_accuracy_metric_hand_case():
    metric = Accuracy(topk=(1, 2))
    preds = [torch.tensor([0.1, 0.7, 0.2]), torch.tensor([0.5, 0.1, 0.4]), torch.tensor([0., 1, 2])]
    metric.process(None, [dict(pred=p, gt=g) for p, g in zip(preds, [1, 2, 0], strict=False)])
    result = metric.compute_metrics(metric.results)
    assert result['top1'] == pytest.approx(100 / 3)
    assert result['top2'] == pytest.approx(200 / 3)


# ------------------------------------------------------- mix.start_iter (the demo's warm start)
@pytest.fixture
def hub():
    """A fresh current MessageHub (a Runner makes one per run), removed afterwards."""
    name = f'test_mix_start_{uuid.uuid4().hex}'
    yield MessageHub.get_instance(name)
    MessageHub._instance_dict.pop(name)


def _unmixed_loss(model, x, y, x2):
    """The loss without mixing, from the parts: gamma CE(P, Y) + (1 - gamma) H(P', P)."""
    logits = model.student(x)
    ce = F.cross_entropy(logits, y)
    if model.teacher is None:
        return ce
    target = model.teacher.module(x2).softmax(1)
    distill = -(target * logits.log_softmax(1)).sum(1).mean()
    return model.mix.gamma * ce + (1 - model.mix.gamma) * distill


@pytest.mark.parametrize('method', ['mixup', 'multimix', 'dense_distill', 'manifold_mixup'])
def test_before_start_iter_the_loss_is_unmixed_and_from_it_the_method_mixes(method, hub):
    """The iteration comes from mmengine's MessageHub, as a Runner's RuntimeInfoHook posts it."""
    model = _model(method, prob=1.0, start_iter=3).eval()
    x, y, x2 = _batch()
    for it in (0, 2):
        hub.update_info('iter', it)
        loss = sum(model.loss(x, y, x2).values())
        torch.testing.assert_close(loss, _unmixed_loss(model, x, y, x2), rtol=1e-5, atol=1e-6)
    hub.update_info('iter', 3)
    random.seed(0)
    torch.manual_seed(0)
    loss = sum(model.loss(x, y, x2).values())
    assert (loss - _unmixed_loss(model, x, y, x2)).abs() > 1e-3


def test_by_default_mixing_starts_at_the_first_iteration(hub):
    hub.update_info('iter', 0)
    assert _model('mixup')._draw(_batch()[0]).kind == 'mixup'
