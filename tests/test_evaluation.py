"""mmtransfer.evaluation against hand-computed cases and the properties the issue names."""
from __future__ import annotations

import pytest
import torch

from mmtransfer.evaluation import (
    aupr,
    auroc,
    detection_accuracy,
    expected_calibration_error,
    fgsm,
    max_softmax_probability,
    pgd,
    reliability_bins,
)


def _linear_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    return net


def _data(m=32):
    g = torch.Generator().manual_seed(1)
    return torch.rand(m, 3, 8, 8, generator=g), torch.randint(0, 4, (m,), generator=g)


def _error(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def test_eps_zero_gives_exactly_the_clean_images():
    model, (x, y) = _linear_model(), _data()
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert torch.equal(pgd(model, x, y, 0.0, 0.01, 5), x)


@pytest.mark.parametrize('eps', [2 / 255, 8 / 255, 0.1])
def test_attacks_stay_in_the_ball_and_the_image_range_and_hurt(eps):
    model, (x, y) = _linear_model(), _data()
    x_f = fgsm(model, x, y, eps)
    x_p = pgd(model, x, y, eps, eps / 4, 10, generator=torch.Generator().manual_seed(0))
    for adv in (x_f, x_p):
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
    clean, e_fgsm, e_pgd = _error(model, x, y), _error(model, x_f, y), _error(model, x_p, y)
    assert clean <= e_fgsm <= e_pgd + 1e-9


def test_fgsm_on_a_linear_model_is_the_hand_computed_step():
    """For logits W x, the CE gradient's sign is sign(W^T (p - e_y)): a fixed direction."""
    model = _linear_model()
    x = torch.full((1, 3, 8, 8), 0.5)
    y = torch.tensor([2])
    w = model[1].weight
    p = model(x).softmax(1)
    direction = (w.t() @ (p - torch.nn.functional.one_hot(y, 4).float()).t()).view(1, 3, 8, 8)
    torch.testing.assert_close(fgsm(model, x, y, 0.1), (x + 0.1 * direction.sign()).clamp(0, 1))


def test_ece_hand_case():
    """4 predictions: two at 0.88 (one right), two at 0.62 (both right). Bins of width 1/15
    (0.88 in bin 13, 0.62 in bin 9): |0.5 - 0.88| * 2/4 + |1.0 - 0.62| * 2/4 = 0.38."""
    probs = torch.tensor([[0.88, 0.12], [0.88, 0.12], [0.38, 0.62], [0.38, 0.62]])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.38)
    bins = reliability_bins(probs, labels)
    assert bins['count'].sum() == 4 and bins['count'][13] == 2 and bins['count'][9] == 2
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, torch.tensor([0, 1])) == 0.0


def test_auroc_aupr_and_detection_accuracy_hand_cases():
    id_s, ood_s = torch.tensor([0.9, 0.8, 0.4]), torch.tensor([0.7, 0.3])
    # pairs ID > OOD: (0.9: 2) + (0.8: 2) + (0.4: 1) = 5 of 6
    assert auroc(id_s, ood_s) == pytest.approx(5 / 6)
    # ranking 0.9+ 0.8+ 0.7- 0.4+ 0.3-: precision at the ID hits 1, 1, 3/4
    assert aupr(id_s, ood_s) == pytest.approx((1 + 1 + 0.75) / 3)
    # threshold 0.8: TPR 2/3, TNR 1 -> 5/6; threshold 0.4: TPR 1, TNR 1/2 -> 3/4
    assert detection_accuracy(id_s, ood_s) == pytest.approx(5 / 6)
    assert auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5            # ties count 1/2


def test_ood_measures_are_chance_on_the_same_split_and_perfect_when_separated():
    g = torch.Generator().manual_seed(0)
    scores = max_softmax_probability(torch.randn(4000, 10, generator=g))
    assert auroc(scores[:2000], scores[2000:]) == pytest.approx(0.5, abs=0.03)
    assert auroc(scores, scores - 2) == 1.0 and aupr(scores, scores - 2) == 1.0
    assert detection_accuracy(scores, scores - 2) == 1.0
    with pytest.raises(ValueError, match='need ID and OOD'):
        auroc(scores, scores[:0])
