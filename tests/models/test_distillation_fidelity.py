"""Distillation mixes the teacher as the student is mixed (paper sec. 3.4, 4.4 and appendix).

Every case fixes the draw (lambda, permutation, CutMix box, block, Lambda), perturbs the teacher so
that it differs from the student, feeds it a different second view, and compares ``loss_distill``
with a naive computation of the paper's formulas: the teacher's view mixed with the same draw at
the same block, by explicit per-example / per-position loops.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from mmtransfer import mixing
from mmtransfer.models import MixPretrainer

M, N, C, GAMMA = 6, 12, 5, 0.25
PAIR_LAM, PERM, BOX = 0.3, torch.tensor([3, 0, 5, 1, 2, 4]), (10, 40, 5, 29)


def _views():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(M, 3, 64, 64, generator=g), torch.randint(0, C, (M,), generator=g),
            torch.randn(M, 3, 64, 64, generator=g))


def _model(method, perturb_teacher=True, **mix):
    torch.manual_seed(0)
    model = MixPretrainer(arch='resnet18', num_classes=C,
                          mix=dict(method=method, n=N, gamma=GAMMA, **mix)).eval()
    if model.teacher is not None:
        model.teacher.module.load_state_dict(model.student.state_dict())
        if perturb_teacher:
            with torch.no_grad():
                for p in model.teacher.parameters():
                    p.mul_(1 + 0.3 * torch.randn_like(p))
    return model


@pytest.fixture
def fixed_draws(monkeypatch):
    """Pairwise lambda, permutation and CutMix box fixed; Lambda drawn from a fixed generator."""
    monkeypatch.setattr(mixing, 'sample_pair_lambda', lambda alpha, **kw: PAIR_LAM)
    monkeypatch.setattr(torch, 'randperm', lambda m, **kw: PERM[:m].clone())
    monkeypatch.setattr(mixing, 'sample_cutmix_box', lambda h, w, lam, **kw: BOX)
    g = torch.Generator().manual_seed(3)
    lam = mixing.sample_lambda(M, N, generator=g)
    monkeypatch.setattr(mixing, 'sample_lambda', lambda m, n, alpha, **kw: lam)
    dense, original = {}, mixing.sample_lambda_dense

    def sample_dense(m, n, r, alpha, **kw):  # one fixed draw per grid size
        if r not in dense:
            dense[r] = original(m, n, r, generator=torch.Generator().manual_seed(r))
        return dense[r]

    monkeypatch.setattr(mixing, 'sample_lambda_dense', sample_dense)
    return lam, dense


# ---------------------------------------------------------------- naive references (loops)
def _pair(h):
    return torch.stack([PAIR_LAM * h[i] + (1 - PAIR_LAM) * h[PERM[i]] for i in range(M)])


def _cut(x):
    y1, y2, x1, x2 = BOX
    out = x.clone()
    for i in range(M):
        out[i, :, y1:y2, x1:x2] = x[PERM[i], :, y1:y2, x1:x2]
    return out


def _combine(h, lam):
    """Column k of Lambda: sum_i lam[i, k] h[i] (eq. 6)."""
    return torch.stack([sum(lam[i, k] * h[i] for i in range(M)) for k in range(N)])


def _pooled(net, h, block):
    return net.head(net.encoder(h, block).mean((2, 3)))


def naive_pairwise_logits(net, x, kind, block=0):
    if kind == 'mixup':
        return _pooled(net, _pair(x), 0)
    if kind == 'cutmix':
        return _pooled(net, _cut(x), 0)
    return _pooled(net, _pair(net.encoder(x, 0, block)), block)       # manifold mixup


def naive_multimix_logits(net, x, lam, block):
    return _pooled(net, _combine(net.encoder(x, 0, block), lam), block)


def naive_dense_weights(h, lam):
    """Eq. 10-13 per position: a = relu(z^T GAP(z)) / sum, M_j = diag(a_j) Lambda_j, s, M^_j."""
    z = h.flatten(2)                                                      # [m, d, r]
    r = z.shape[-1]
    attn = torch.stack([(z[i].t() @ z[i].mean(1)).relu() for i in range(M)])
    attn = attn / attn.sum(1, keepdim=True)
    w, s = torch.empty(r, M, N), torch.empty(N, r)
    for j in range(r):
        mj = attn[:, j, None] * lam[j]
        s[:, j] = mj.sum(0)
        w[j] = mj / mj.sum(0)
    return w, s


def naive_dense_logits(net, x, lam, block):
    """Dense MultiMix at ``block``: mix per position, rest of the network, head as 1x1 conv;
    weights and s averaged over each loss-grid cell's positions."""
    h = net.encoder(x, 0, block)
    _, d, hh, ww = h.shape
    w, s = naive_dense_weights(h, lam)
    z = h.flatten(2)
    mixed = torch.stack([torch.stack([w[j, :, k] @ z[:, :, j] for j in range(hh * ww)], -1)
                         for k in range(N)]).view(N, d, hh, ww)
    out = net.encoder(mixed, block)                                       # [n, D, H, W]
    big, small = hh // out.shape[-1], out.shape[-1]
    cells = [[(a * big + u) * ww + b * big + v for u in range(big) for v in range(big)]
             for a in range(small) for b in range(small)]
    w_out = torch.stack([w[c].mean(0) for c in cells])                    # [R, m, n]
    s_out = torch.stack([s[:, c].mean(1) for c in cells], 1)              # [n, R]
    logits = torch.einsum('ndr,cd->ncr', out.flatten(2), net.head.weight) + net.head.bias[:, None]
    return logits, w_out, s_out


def soft_ce(logits, target):
    return -(target * logits.log_softmax(1)).sum(1).mean()


def dense_soft_ce(logits, target, s):
    ce = -(target * logits.log_softmax(1)).sum(1)                         # [n, r]
    return ((s * ce).sum(0) / s.sum(0)).mean()


# ---------------------------------------------------------------- the teacher mixes alike
PAIRWISE = [
    ('mixup', dict(method='distill', prob=0.0), 0),        # the input-mixup half of distill
    ('mixup', dict(method='dense_distill', prob=0.0), 0),  # ... and of dense_distill (pooled)
    ('cutmix', dict(method='cutmix', distill=True), 0),
    ('manifold_mixup', dict(method='manifold_mixup', distill=True, manifold_blocks=(2,)), 2),
]


@pytest.mark.parametrize('kind, mix, block', PAIRWISE, ids=[f'{k}-{m["method"]}'
                                                          for k, m, _ in PAIRWISE])
def test_pairwise_distillation_mixes_the_teachers_view(fixed_draws, kind, mix, block):
    model = _model(**mix)
    x, y, x2 = _views()
    losses = model.loss(x, y, x2)
    with torch.no_grad():
        student = naive_pairwise_logits(model.student, x, kind, block)
        target = naive_pairwise_logits(model.teacher.module, x2, kind, block).softmax(1)
    lam = PAIR_LAM if kind != 'cutmix' else 1 - (BOX[1] - BOX[0]) * (BOX[3] - BOX[2]) / 64 ** 2
    y_mix = torch.stack([lam * F.one_hot(y[i], C) + (1 - lam) * F.one_hot(y[PERM[i]], C)
                         for i in range(M)]).float()
    torch.testing.assert_close(losses['loss_distill'], (1 - GAMMA) * soft_ce(student, target),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses['loss_cls'], GAMMA * soft_ce(student, y_mix),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('block', [4, 2])
def test_multimix_distillation_mixes_the_teachers_block(fixed_draws, block):
    lam, _ = fixed_draws
    model = _model('distill', prob=1.0, block=block)
    x, y, x2 = _views()
    loss = model.loss(x, y, x2)['loss_distill']
    with torch.no_grad():
        student = naive_multimix_logits(model.student, x, lam, block)
        target = naive_multimix_logits(model.teacher.module, x2, lam, block).softmax(1)
    torch.testing.assert_close(loss, (1 - GAMMA) * soft_ce(student, target), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('block', [4, 3])
def test_dense_distillation_uses_the_teachers_own_attention(fixed_draws, block):
    _, dense = fixed_draws
    model = _model('dense_distill', prob=1.0, block=block)
    x, y, x2 = _views()
    losses = model.loss(x, y, x2)
    r = 4 if block == 4 else 16                             # resnet18 at 64 px: 2x2, 4x4
    with torch.no_grad():
        student, w, s = naive_dense_logits(model.student, x, dense[r], block)
        teacher, _, _ = naive_dense_logits(model.teacher.module, x2, dense[r], block)
    y_mix = torch.einsum('rmn,mc->ncr', w, F.one_hot(y, C).float())
    torch.testing.assert_close(losses['loss_cls'], GAMMA * dense_soft_ce(student, y_mix, s),
                               rtol=1e-5, atol=1e-6)
    expected = (1 - GAMMA) * dense_soft_ce(student, teacher.softmax(1), s)
    torch.testing.assert_close(losses['loss_distill'], expected, rtol=1e-5, atol=1e-6)


def test_teacher_attention_student_switch_reuses_the_students_weights(fixed_draws):
    _, dense = fixed_draws
    x, y, x2 = _views()
    own = _model('dense_distill', prob=1.0).loss(x, y, x2)['loss_distill']
    model = _model('dense_distill', prob=1.0, teacher_attention='student')
    shared = model.loss(x, y, x2)['loss_distill']
    with torch.no_grad():
        student, w, s = naive_dense_logits(model.student, x, dense[4], 4)
        t = model.teacher.module
        t_logits = t.head(t.encoder(x2).flatten(2))                      # [m, c, r]
        target = torch.einsum('mcr,rmn->ncr', t_logits, w).softmax(1)
    torch.testing.assert_close(shared, (1 - GAMMA) * dense_soft_ce(student, target, s),
                               rtol=1e-5, atol=1e-6)
    assert abs(float(own) - float(shared)) > 1e-4          # the switch changes the target


ALL_DISTILL = [dict(method='distill', prob=0.0), dict(method='distill', prob=1.0),
               dict(method='distill', prob=1.0, block=2),
               dict(method='dense_distill', prob=0.0), dict(method='dense_distill', prob=1.0),
               dict(method='dense_distill', prob=1.0, block=3),
               dict(method='cutmix', distill=True), dict(method='mixup', distill=True),
               dict(method='manifold_mixup', distill=True)]


@pytest.mark.parametrize('mix', ALL_DISTILL, ids=lambda m: '-'.join(map(str, m.values())))
def test_a_teacher_equal_to_the_student_on_the_same_view_gives_its_own_entropy(fixed_draws, mix):
    """Teacher = student, view 2 = view 1, eval mode: the target is the student's own mixed
    prediction, so ``loss_distill = (1 - gamma) H(P~, P~)``. Fails whenever the teacher's view is
    mixed differently from the student's (the check of issue 8, for every kind of batch)."""
    model = _model(perturb_teacher=False, **mix)
    x, y, _ = _views()
    random.seed(0)                                         # the manifold block
    losses = model.loss(x, y, x.clone())
    random.seed(0)
    with torch.no_grad():
        mixed = model._forward_mixed(model.student, x, y, model._draw(x))
        entropy = model._soft_loss(mixed.logits, mixed.logits.softmax(1), mixed.s)
    torch.testing.assert_close(losses['loss_distill'], (1 - GAMMA) * entropy, rtol=1e-5, atol=1e-6)
