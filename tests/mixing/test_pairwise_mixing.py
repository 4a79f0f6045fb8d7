import pytest
import torch

from mmtransfer.mixing import cutmix, pair_mixup


def test_pair_mixup_hand_case():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x_mix, y_mix = pair_mixup(x, y, 0.25, torch.tensor([1, 0]))
    torch.testing.assert_close(x_mix, torch.tensor([[2.5, 3.5], [1.5, 2.5]]))
    torch.testing.assert_close(y_mix, torch.tensor([[0.25, 0.75], [0.75, 0.25]]))


@pytest.mark.parametrize('lam', [0.0, 0.3, 0.75, 0.999, 1.0])
@pytest.mark.parametrize('seed', range(6))
def test_cutmix_pastes_partner_box_and_reports_kept_area(lam, seed):
    m, channels, height, width = 3, 2, 12, 16
    x = torch.arange(m * channels * height * width, dtype=torch.float32)
    x = x.view(m, channels, height, width)                # all values distinct
    y = torch.eye(4)[[0, 1, 3]]
    index = torch.tensor([2, 0, 1])                       # no example is its own partner
    x_mix, y_mix, lam_adj = cutmix(x, y, lam, index, generator=torch.Generator().manual_seed(seed))
    box = x_mix[0, 0] != x[0, 0]                          # [H, W] pasted region
    rows, cols = box.any(1), box.any(0)
    assert torch.equal(box, rows[:, None] & cols[None, :])     # an axis-aligned rectangle
    assert torch.equal(x_mix[:, :, box], x[index][:, :, box])
    assert torch.equal(x_mix[:, :, ~box], x[:, :, ~box])
    assert lam_adj == pytest.approx(1 - box.sum().item() / (height * width))
    assert lam_adj >= lam - 1e-12                          # clipping/rounding only shrinks the box
    torch.testing.assert_close(y_mix, lam_adj * y + (1 - lam_adj) * y[index])


def test_cutmix_is_reproducible_with_generator():
    x, y, index = torch.randn(2, 1, 8, 8), torch.eye(2), torch.tensor([1, 0])
    a = cutmix(x, y, 0.5, index, generator=torch.Generator().manual_seed(3))
    b = cutmix(x, y, 0.5, index, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and a[2] == b[2]


def test_pairwise_bad_arguments():
    x, y, index = torch.zeros(2, 1, 4, 4), torch.eye(2), torch.tensor([1, 0])
    with pytest.raises(ValueError, match=r'^lam\b'):
        pair_mixup(x, y, 1.5, index)
    with pytest.raises(ValueError, match=r'^lam\b'):
        cutmix(x, y, -0.1, index)
    with pytest.raises(ValueError, match=r'^index\b'):
        pair_mixup(x, y, 0.5, torch.tensor([1, 0, 0]))
    with pytest.raises(ValueError, match=r'^x\b'):
        cutmix(torch.zeros(2, 4), y, 0.5, index)


def test_cutmix_is_its_box_draw_then_paste():
    """One draw (box) can be applied to a second view: cutmix == paste_box(sample_cutmix_box)."""
    from mmtransfer.mixing import box_lambda, paste_box, sample_cutmix_box

    x, y, index = torch.randn(3, 2, 10, 12), torch.eye(3), torch.tensor([2, 0, 1])
    x_mix, _, lam = cutmix(x, y, 0.6, index, generator=torch.Generator().manual_seed(5))
    box = sample_cutmix_box(10, 12, 0.6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(paste_box(x, index, box), x_mix)
    assert box_lambda(box, 10, 12) == lam
    y1, y2, x1, x2 = box
    assert torch.equal(paste_box(x, index, box)[1, :, y1:y2, x1:x2], x[0, :, y1:y2, x1:x2])


def test_pair_mix_hand_case():
    from mmtransfer.mixing import pair_mix

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    torch.testing.assert_close(pair_mix(x, 0.75, torch.tensor([2, 0, 1])),
                               torch.tensor([[2.0, 3.0], [2.5, 3.5], [4.5, 5.5]]))
