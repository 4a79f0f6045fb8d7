"""``mix.start_iter``: unmixed training before it (the CPU demo's warm start), the method's
mixing from it on; the iteration comes from mmengine's MessageHub, as a Runner posts it."""
from __future__ import annotations

import random
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmtransfer.models import MixConfigError, MixPretrainer


@pytest.fixture
def hub():
    """A fresh current MessageHub (a Runner makes one per run), removed afterwards."""
    name = f'test_mix_start_{uuid.uuid4().hex}'
    yield MessageHub.get_instance(name)
    MessageHub._instance_dict.pop(name)


def _model(method, **mix):
    torch.manual_seed(0)
    return MixPretrainer(arch='resnet18', num_classes=5,
                         mix=dict(method=method, n=12, prob=1.0, start_iter=3, **mix)).eval()


def _batch(m=6, size=64):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(m, 3, size, size, generator=g), torch.randint(0, 5, (m,), generator=g),
            torch.randn(m, 3, size, size, generator=g))


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
    model = _model(method)
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


def test_start_iter_zero_mixes_at_every_iteration(hub):
    model = MixPretrainer(arch='resnet18', num_classes=5, mix=dict(method='mixup')).eval()
    x, y, x2 = _batch()
    hub.update_info('iter', 0)
    random.seed(0)
    assert model._draw(x).kind == 'mixup'


@pytest.mark.parametrize('bad', [-1, 2.5, '10'])
def test_bad_start_iter_names_the_key(bad):
    with pytest.raises(MixConfigError, match='mix.start_iter'):
        MixPretrainer(arch='resnet18', num_classes=5, mix=dict(method='mixup', start_iter=bad))
