"""The torch wavelet packet transform agrees with PyWavelets and inverts exactly."""

import numpy as np
import pytest
import pywt
import torch

from walloc_features.codecs import WaveletPacketTransform, pad_to_multiple

WAVELETS = ["bior4.4", "db1", "db2", "sym4", "coif2"]


def pywt_packets(x, wavelet, levels, ndim):
    """Reference: PyWavelets' packet tree in natural order, stacked channel-major."""
    tree = pywt.WaveletPacket2D if ndim == 2 else pywt.WaveletPacket
    return np.stack([
        np.concatenate([
            [node.data for node in tree(channel, wavelet, mode="periodization", maxlevel=levels)
             .get_level(levels, order="natural")]
            for channel in sample
        ])
        for sample in x
    ])  # fmt: skip


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_one_level_2d_equals_pywt_dwt2(wavelet):
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 24)).astype(np.float32)
    ours = WaveletPacketTransform(wavelet, levels=1, ndim=2)(torch.from_numpy(x)).numpy()
    cA, (cH, cV, cD) = pywt.dwt2(x, wavelet, mode="periodization", axes=(-2, -1))
    expected = np.stack([cA, cH, cV, cD], axis=2).reshape(2, 12, 8, 12)  # channel c*4 + band
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_one_level_1d_equals_pywt_dwt(wavelet):
    x = np.random.default_rng(1).standard_normal((3, 2, 40)).astype(np.float32)
    ours = WaveletPacketTransform(wavelet, levels=1, ndim=1)(torch.from_numpy(x)).numpy()
    cA, cD = pywt.dwt(x, wavelet, mode="periodization", axis=-1)
    np.testing.assert_allclose(ours, np.stack([cA, cD], axis=2).reshape(3, 4, 20), atol=1e-5)


@pytest.mark.parametrize("ndim, shape", [(2, (2, 3, 32, 24)), (1, (2, 2, 64))])
@pytest.mark.parametrize("levels", [2, 3])
@pytest.mark.parametrize("wavelet", ["bior4.4", "db2"])
def test_full_packet_tree_matches_pywt_natural_order(ndim, shape, levels, wavelet):
    x = np.random.default_rng(2).standard_normal(shape)
    ours = WaveletPacketTransform(wavelet, levels, ndim)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, pywt_packets(x, wavelet, levels, ndim), atol=1e-10)


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("ndim, shape, levels", [(2, (4, 3, 64, 48), 3), (1, (4, 2, 1024), 8), (2, (1, 5, 16, 16), 4)])
def test_inverse_reconstructs_float32(wavelet, ndim, shape, levels):
    x = torch.rand(shape)
    wpt = WaveletPacketTransform(wavelet, levels, ndim)
    coeffs = wpt(x)
    assert coeffs.shape[1] == shape[1] * (2**ndim) ** levels
    assert tuple(coeffs.shape[2:]) == tuple(s // 2**levels for s in shape[2:])
    assert (wpt.inverse(coeffs) - x).abs().max() <= 1e-5


def test_published_shapes():
    """RGB J=3 -> 192 channels at 1/8 resolution; stereo J=8 -> 512 channels at 1/256 length."""
    assert WaveletPacketTransform(levels=3, ndim=2)(torch.rand(1, 3, 64, 64)).shape == (1, 192, 8, 8)
    assert WaveletPacketTransform(levels=8, ndim=1)(torch.rand(1, 2, 2048)).shape == (1, 512, 8)


def test_differentiable_in_float64():
    wpt = WaveletPacketTransform("bior4.4", levels=2, ndim=2)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: wpt.inverse(wpt(t) ** 2), (x,))


def test_size_not_divisible_is_refused_and_padding_fixes_it():
    wpt = WaveletPacketTransform(levels=3, ndim=2)
    x = torch.rand(1, 1, 28, 30)
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*levels = 8"):
        wpt(x)
    padded = pad_to_multiple(x, 8, ndim=2)
    assert padded.shape == (1, 1, 32, 32)
    torch.testing.assert_close(padded[..., :28, :30], x)  # the signal is untouched
    torch.testing.assert_close(padded[..., 28:, :30], x[..., 24:28, :].flip(-2))  # symmetric


def test_wrong_rank_and_unknown_wavelet():
    with pytest.raises(ValueError, match="4-D tensor"):
        WaveletPacketTransform(ndim=2)(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="Unknown wavelet name 'no-such-wavelet'"):  # PyWavelets' words
        WaveletPacketTransform("no-such-wavelet")


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
@pytest.mark.parametrize("wavelet", ["bior4.4", "db2", "haar"])
def test_fused_levels_equal_the_level_by_level_cascade_on_photos(photos, levels, wavelet):
    """The fast path (levels fused into strided convolutions) is the straightforward transform."""
    x = torch.from_numpy(np.stack([p[:96, :128].transpose(2, 0, 1) for p in photos.values()]) / 255).float()
    wpt = WaveletPacketTransform(wavelet, levels, ndim=2)
    torch.testing.assert_close(wpt(x), wpt.cascade_forward(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("levels", [3, 5, 8])
def test_fused_levels_equal_the_cascade_on_stereo_speech(levels):
    from walloc_features.datasets import synthesize

    clip = np.stack([np.resize(synthesize("left"), 4096), np.resize(synthesize("right"), 4096)])
    x = torch.from_numpy(clip[None]).float()
    wpt = WaveletPacketTransform("bior4.4", levels, ndim=1)
    torch.testing.assert_close(wpt(x), wpt.cascade_forward(x), atol=1e-5, rtol=0)


def test_fused_levels_wrap_around_signals_shorter_than_their_filters():
    x = torch.rand(2, 3, 8, 16, dtype=torch.float64)  # 8 samples < the 57-tap fused bior4.4 filters
    wpt = WaveletPacketTransform("bior4.4", 3, ndim=2)
    torch.testing.assert_close(wpt(x), wpt.cascade_forward(x), atol=1e-12, rtol=0)
    torch.testing.assert_close(wpt.inverse(wpt(x)), x, atol=1e-10, rtol=0)
