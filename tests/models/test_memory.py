"""The early-block MultiMix memory estimate against issue 10's measurement, and the refusal."""
from __future__ import annotations

import pytest

from mmtransfer.models.memory import check_mixing_memory, mixed_activation_bytes

GIB = 2**30


@pytest.mark.parametrize('block, measured_gib', [(0, 80), (1, 45)])
def test_estimate_matches_the_measured_resnet50_activations(block, measured_gib):
    """Measured on CPU (issue 10): ResNet-50, 224 px, n = 1000, float32."""
    estimate = mixed_activation_bytes('resnet50', 224, block, 1000) / GIB
    assert estimate == pytest.approx(measured_gib, rel=0.15)


def test_estimate_scales_with_n_and_dtype_and_vanishes_at_the_embedding():
    one = mixed_activation_bytes('resnet18', 64, 1, 1)
    assert mixed_activation_bytes('resnet18', 64, 1, 100) == pytest.approx(100 * one, rel=1e-5)
    assert mixed_activation_bytes('resnet18', 64, 1, 100, bytes_per_value=2) == \
        pytest.approx(50 * one, rel=1e-5)
    assert mixed_activation_bytes('resnet50', 224, 4, 1000) == 0
    assert mixed_activation_bytes('resnet50', 224, 3, 1000) < \
        mixed_activation_bytes('resnet50', 224, 2, 1000)


def test_a_mixing_that_cannot_fit_is_refused_in_one_line_naming_the_keys():
    with pytest.raises(ValueError, match=r'mix\.block=0 with mix\.n=1000') as err:
        check_mixing_memory('resnet50', 224, 0, 1000, free_bytes=78 * GIB)
    assert '\n' not in str(err.value) and 'lower mix.n or raise mix.block' in str(err.value)
    check_mixing_memory('resnet50', 224, 2, 1000, free_bytes=78 * GIB)      # 20 GiB: fits
    check_mixing_memory('resnet50', 224, 0, 1000, free_bytes=78 * GIB, bytes_per_value=2)
