"""Codec quality on real photographs: fitted on the top halves, scored on the unseen bottom halves.

Measured (64 test crops of 64x64; 2026-12-05): bicubic 32.0 dB at 4x and 27.2 dB at 16x; linear WaLLoC
36.3 dB at 4x and 29.1 dB at 16x; conv decoder 29.5 dB at 16x.
"""

import numpy as np
import pytest
from PIL import Image

from walloc_features import WaLLoCTransformer
from walloc_features.evaluation import psnr


@pytest.fixture(scope="module")
def split(photos, random_crops):
    rng = np.random.default_rng(0)
    images = list(photos.values())
    train = random_crops(images, 600, 64, rng, rows=lambda im: (0, im.shape[0] // 2))
    test = random_crops(images, 64, 64, rng, rows=lambda im: (im.shape[0] // 2, im.shape[0]))
    return train, test


def bicubic_round_trip_psnr(X, reduction):
    """Anti-aliased bicubic downsampling by sqrt(reduction) per axis, then bicubic upsampling."""
    size = X.shape[-1]
    small = size // int(np.sqrt(reduction))
    out = [
        np.asarray(Image.fromarray(x.transpose(1, 2, 0)).resize((small, small), Image.BICUBIC)
                   .resize((size, size), Image.BICUBIC)).transpose(2, 0, 1)
        for x in X
    ]  # fmt: skip
    return float(psnr(X / 255.0, np.stack(out) / 255.0, axis=(1, 2, 3)).mean())


@pytest.fixture(scope="module")
def linear_codecs(split):
    train, _ = split
    return {r: WaLLoCTransformer(reduction=r).fit(train) for r in (4, 16)}


@pytest.mark.parametrize("reduction, margin_db", [(4, 2.0), (16, 1.0)])
def test_linear_codec_beats_bicubic_resolution_reduction(split, linear_codecs, reduction, margin_db):
    _, test = split
    codec = linear_codecs[reduction]
    assert codec.reduction_ == reduction
    assert codec.score(test) > bicubic_round_trip_psnr(test, reduction) + margin_db


def test_conv_decoder_beats_linear_decoder_at_16x(split, linear_codecs):
    train, test = split
    conv = WaLLoCTransformer(reduction=16, decoder="conv", max_epochs=8, random_state=0).fit(train)
    assert conv.loss_curve_[-1] < conv.loss_curve_[0]
    # Same encoder (closed form), so the latents are identical; only decoding differs.
    np.testing.assert_allclose(conv.transform(test), linear_codecs[16].transform(test), atol=1e-4)
    assert conv.score(test) > linear_codecs[16].score(test) + 0.2


def test_the_conv_decoders_correction_reads_latents_at_unit_scale():
    """The correction network sees each latent divided by its standard deviation (``input_scale``, set from the
    packet statistics with the encoder), so its first layer starts on unit-scale inputs whatever the code range."""
    import torch

    from walloc_features.codecs.decoders import ConvDecoder

    X = np.random.default_rng(0).random((64, 1, 16, 16)).astype(np.float32)
    model = WaLLoCTransformer(reduction=4, decoder="conv", max_epochs=1, random_state=0).fit(X)
    decoder = model.codec_.decoder
    assert isinstance(decoder, ConvDecoder)
    Z = torch.from_numpy(model.transform(X[:16]).reshape(16, *model.latent_shape_))
    scaled = Z * decoder.input_scale.view(1, -1, 1, 1)
    assert 0.5 < float(scaled.std(dim=(0, 2, 3)).mean()) < 2.0  # about unit, where the latents' own std is ~70
    with torch.no_grad():
        decoder.correction[-1].weight.normal_(generator=torch.Generator().manual_seed(0))  # a head that acts
        torch.testing.assert_close(decoder(Z), decoder.linear(Z) + decoder.correction(scaled))
