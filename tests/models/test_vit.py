"""ViT-S/16 as an encoder: timm's network block by block, dense MultiMix over its patch tokens
against a naive per-position reference, every method, and export into timm strictly."""
from __future__ import annotations

import random

import pytest
import timm
import torch

from mmtransfer import mixing
from mmtransfer.analysis import infer_encoder_args
from mmtransfer.export import export_backbone
from mmtransfer.models import METHODS, MixPretrainer, build_encoder
from mmtransfer.models.mix_config import MixConfig
from mmtransfer.models.pretrainer import check_dense_grid, embedding_grid
from tests.models.test_cifar_networks import train_two_steps

M, N, C = 3, 4, 5


@pytest.fixture(scope='module')
def encoder():
    torch.manual_seed(0)
    return build_encoder('vit_s16').eval()


def _images(m=M, size=32, seed=1):
    return torch.randn(m, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_state_dict_is_timms_and_the_forward_is_timms(encoder):
    """Same keys and shapes as timm's vit_small_patch16_224 less its head, loaded strictly, and
    the same features and pooled embedding at 224 px."""
    ref = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=0).eval()
    ref.load_state_dict(encoder.state_dict(), strict=True)
    x = _images(1, 224)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), ref.forward_features(x))
        torch.testing.assert_close(encoder.pool(encoder(x)), ref(x))


@pytest.mark.parametrize('k', range(5))
def test_entering_at_block_k_is_the_full_forward(encoder, k):
    x = _images(size=64)
    with torch.no_grad():
        full = encoder(x)
        h = encoder(x, 0, k)
        torch.testing.assert_close(encoder(h, k), full)
    assert full.shape == (M, 1 + 16, 384)
    if k:
        assert h.shape == (M, 1 + 16, 384)  # a token sequence at every block


def test_block_k_ends_after_transformer_block_3k(encoder):
    """Block 2 is timm's tokens after blocks 0..5 (before the final norm)."""
    x = _images()
    with torch.no_grad():
        tokens = encoder.norm_pre(encoder.patch_drop(encoder._pos_embed(encoder.patch_embed(x))))
        for blk in encoder.blocks[:6]:
            tokens = blk(tokens)
        torch.testing.assert_close(encoder(x, 0, 2), tokens)


def test_pooling_and_positions(encoder):
    z = torch.randn(M, 1 + 9, 384)
    torch.testing.assert_close(encoder.pool(z), z[:, 0])
    avg = build_encoder('vit_s16_avg')
    torch.testing.assert_close(avg.pool(z), z[:, 1:].mean(1))
    maps = encoder.positions(z)
    assert maps.shape == (M, 384, 3, 3)
    torch.testing.assert_close(maps[:, :, 1, 2], z[:, 1 + 1 * 3 + 2])   # row-major patches


@pytest.mark.parametrize('size, grid', [(32, (2, 2)), (64, (4, 4)), (224, (14, 14))])
def test_the_token_grid(size, grid):
    assert embedding_grid('vit_s16', size) == grid


def test_bad_sizes_and_grids_are_named():
    with pytest.raises(ValueError, match='image size 40 is not a multiple of the ViT patch '
                                         'size 16'):
        embedding_grid('vit_s16', 40)
    with pytest.raises(ValueError, match=r'mix.dense_pool=4 does not divide the 14x14 token'):
        check_dense_grid(MixConfig(method='dense', dense_pool=4), (14, 14), whole_windows=True)
    check_dense_grid(MixConfig(method='dense', dense_pool=2), (14, 14), whole_windows=True)
    check_dense_grid(MixConfig(method='dense', dense_pool=4), (7, 7))  # a CNN's clipped window
    with pytest.raises(ValueError, match='fixed width'):
        build_encoder('vit_s16', width=32)
    with pytest.raises(ValueError, match="attention_u='token' needs a class token: arch "
                                         "'resnet18' has none"):
        MixPretrainer('resnet18', num_classes=C, mix=dict(method='dense', attention_u='token'))


# ------------------------------------------------------------------ dense MultiMix on tokens
def naive_token_loss(model, x, y, lam, block, u):
    """Eq. 10-14 on the patch tokens, one position, mixed point and example at a time: the
    attention of example i at token j is relu(p_ij . u_i) normalised, u_i its class token
    (``'token'``) or the mean of its patch tokens (``'gap'``); at an earlier block the patch
    tokens are mixed per position and the class token with the mean of the positions' weights;
    the head reads each output patch token."""
    enc = model.student.encoder

    def head(v):  # the linear classifier on one token
        return model.student.head.weight @ v + model.student.head.bias
    h = enc(x, 0, block)                                                    # [m, 1 + r, d]
    r = h.shape[1] - 1
    attn = torch.zeros(M, r)
    for i in range(M):
        query = h[i, 0] if u == 'token' else h[i, 1:].mean(0)
        for j in range(r):
            attn[i, j] = torch.relu(h[i, 1 + j] @ query)
        attn[i] = attn[i] / attn[i].sum()
    w, s = torch.zeros(r, M, N), torch.zeros(N, r)
    for j in range(r):
        for k in range(N):
            col = attn[:, j] * lam[j, :, k]
            s[k, j] = col.sum()
            w[j, :, k] = col / col.sum()
    if block < 4:
        mixed = torch.zeros(N, 1 + r, h.shape[2])
        for k in range(N):
            for i in range(M):
                mixed[k, 0] += w[:, i, k].mean() * h[i, 0]
                for j in range(r):
                    mixed[k, 1 + j] += w[j, i, k] * h[i, 1 + j]
        out = enc(mixed, block)
        logits = [[head(out[k, 1 + j]) for j in range(r)] for k in range(N)]
    else:
        per_example = [[head(h[i, 1 + j]) for j in range(r)] for i in range(M)]
        logits = [[sum(w[j, i, k] * per_example[i][j] for i in range(M)) for j in range(r)]
                  for k in range(N)]
    total = 0.0
    for j in range(r):
        num = sum(s[k, j] * -sum(w[j, i, k] * logits[k][j].log_softmax(0)[y[i]]
                                 for i in range(M)) for k in range(N))
        total = total + num / s[:, j].sum()
    return total / r


@pytest.mark.parametrize('block', [4, 2])
@pytest.mark.parametrize('u', ['token', 'gap'])
def test_dense_multimix_on_tokens_matches_the_naive_reference(monkeypatch, block, u):
    torch.manual_seed(0)
    model = MixPretrainer('vit_s16', num_classes=C,
                          mix=dict(method='dense', n=N, prob=1.0, block=block, attention_u=u))
    model.eval()  # no dropout in ViT-S anyway; the reference runs the same modules
    lam = mixing.sample_lambda_dense(M, N, 4, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(mixing, 'sample_lambda_dense', lambda *a, **k: lam)
    x, y = _images(), torch.tensor([0, 3, 3])
    got = model.loss(x, y)['loss_cls']
    with torch.no_grad():
        want = naive_token_loss(model, x, y, lam, block, u)
    torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('method', list(METHODS))
def test_every_method_trains_two_steps_on_vit(method):
    random.seed(0)
    torch.manual_seed(0)
    model = MixPretrainer('vit_s16', num_classes=C,
                          mix=dict(method=method, n=8, attention_u='token')).train()
    moved = train_two_steps(model, _images(4), torch.tensor([0, 1, 2, 3]), _images(4, seed=2),
                            lr=0.01)
    student = {k for k in model.state_dict() if k.startswith('student.')}
    assert student <= moved  # every weight, the class token and position embedding included
    if model.teacher is not None:
        assert any(k.startswith('teacher.') for k in moved)


# ------------------------------------------------------------------ export
def test_the_exported_backbone_loads_into_timm_strictly(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = MixPretrainer('vit_s16', num_classes=C, mix=dict(method='distill'))
    ckpt = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    for which in ('student', 'teacher'):
        out = tmp_path / f'{which}.pth'
        export_backbone(str(ckpt), str(out), which)
        for state in (torch.load(out, weights_only=True),
                      load_file(out.with_suffix('.safetensors'))):
            vit = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=0)
            vit.load_state_dict(state, strict=True)
            torch.testing.assert_close(vit.pos_embed, model.student.encoder.pos_embed.detach())
    assert infer_encoder_args(torch.load(tmp_path / 'student.pth', weights_only=True)) == dict(
        arch='vit_s16', width=None)


@pytest.mark.parametrize('method', ['dense_distill', 'distill'])
def test_bfloat16_autocast_step_is_finite_and_close_to_float32(method):
    """What --amp does on a GPU, on the CPU: the step under bf16 autocast stays finite and
    within bf16 error of float32 (the mixing and the losses run in float32)."""
    torch.manual_seed(0)
    model = MixPretrainer('vit_s16', num_classes=C,
                          mix=dict(method=method, n=8, prob=1.0, attention_u='token'))
    x, y, x2 = _images(4), torch.tensor([0, 1, 2, 3]), _images(4, seed=2)

    def step(autocast):
        random.seed(2)
        torch.manual_seed(2)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            return model(x, y, x2, mode='loss')

    reference, losses = step(False), step(True)
    for key, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value)
        torch.testing.assert_close(value, reference[key], rtol=0.05, atol=1e-3, msg=key)
    sum(losses.values()).backward()
    assert torch.isfinite(model.student.encoder.patch_embed.proj.weight.grad).all()
