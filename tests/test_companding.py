"""Companding maps latents into the code range and back."""

import numpy as np
import pytest
import torch

from walloc_features.codecs import NoiseBottleneck, compand, decompand
from walloc_features.codecs.companding import companding_constants


@pytest.mark.parametrize("bits", [4, 8, 12])
def test_compand_range_and_inverse(bits):
    y = torch.linspace(-3, 3, 1001, dtype=torch.float64) * companding_constants(bits)[0]
    z = compand(y, bits)
    half = 2 ** (bits - 1)
    assert z.abs().max() < half - 0.5  # rounds into [-(2**(b-1) - 1), 2**(b-1) - 1]
    assert torch.all(torch.diff(z) > 0)  # monotone, so codes keep the latents' order
    torch.testing.assert_close(decompand(z, bits), y, rtol=1e-6, atol=1e-6)


def test_published_constants_for_8_bits():
    s, m = companding_constants(8)
    assert s == pytest.approx(127 / 1.85)
    assert m == pytest.approx(127.499)


def test_bottleneck_rounds_in_eval_and_adds_bounded_noise_in_training():
    z = torch.linspace(-100, 100, 10_000)
    bottleneck = NoiseBottleneck()
    noisy = bottleneck.train()(z)
    assert 0 < (noisy - z).abs().max() <= 0.5
    assert torch.equal(bottleneck.eval()(z), torch.round(z))


def test_invalid_bits():
    with pytest.raises(ValueError, match="latent_bits"):
        companding_constants(1)
    with pytest.raises(ValueError, match="latent_bits"):
        companding_constants(np.int64(17))


def test_compand_is_the_published_normal_cdf_formula_and_keeps_its_gradient():
    s, m = companding_constants(8)
    y = torch.linspace(-6, 6, 2001, dtype=torch.float64).mul(s).requires_grad_()
    published = 2 * m * (torch.special.ndtr(y / s) - 0.5)  # ToUniform: 2 m (Phi(y / s) - 0.5)
    ours = compand(y, 8)
    torch.testing.assert_close(ours, published, rtol=0, atol=1e-10)
    # float32 latents across the code range: bit for bit what ToUniform computes (Normal(0, 1).cdf, then
    # - 0.5, then x 2m); torch.special.ndtr differed from it in 505k of these 4M values and 6 codes
    y32 = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0)) * s * 1.5
    published32 = 2 * m * (torch.distributions.Normal(0, 1).cdf(y32 / s) - 0.5)
    assert torch.equal(compand(y32, 8), published32)
    (grad,) = torch.autograd.grad(ours.sum(), y)
    (expected,) = torch.autograd.grad(published.sum(), y)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-14)


def test_codes_take_the_smallest_integer_type_and_the_range_ends_decode_finite():
    """8-bit codes are int8 (half the memory of int16). The extreme codes +-(2**(b-1) - 1) decode exactly, up to
    12 bits inside the clamp of the uniform range; the range's own ends +-m decode to the clamp, finite, not inf."""
    from scipy.special import ndtri

    from walloc_features.codecs.companding import code_dtype

    assert code_dtype(2) is np.int8 and code_dtype(8) is np.int8 and code_dtype(9) is np.int16
    for bits in (4, 8, 12):
        s, m = companding_constants(bits)
        top = 2 ** (bits - 1) - 1
        codes = torch.tensor([-top, top, -m, m], dtype=torch.float64)
        expected = s * ndtri(np.array([-top, top]) / (2 * m) + 0.5)
        expected = np.concatenate([expected, s * ndtri(np.array([1e-4, 1 - 1e-4]))])  # the clamp binds at +-m
        np.testing.assert_allclose(decompand(codes, bits).numpy(), expected, rtol=1e-9)
