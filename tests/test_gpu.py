"""``device="cuda"`` end to end: fit, transform, inverse_transform and score agree with the CPU.

Skipped without a CUDA device (CI is CPU-only); run on a lent GPU with ``pytest tests/test_gpu.py``.
"""

import gc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from walloc_features import WaLLoCTransformer
from walloc_features.codecs import WaveletPacketTransform
from walloc_features.datasets import synthesize
from walloc_features.features import DCTTransformer, ResolutionReducer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (CI is CPU-only)")


@pytest.fixture(scope="module")
def crops(photos):
    return np.stack([p[y : y + 64, x : x + 64].transpose(2, 0, 1) for p in photos.values()
                     for y in (0, 100, 200) for x in (0, 150)])  # fmt: skip


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 96)), (1, 8, (2**14,))])
def test_fast_encoder_on_cuda_equals_the_cpu_cascade(ndim, levels, size):
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.rand(3, 2, *size)
    weight, bias = torch.randn(12, wpt.output_channels(2)) / 8, torch.randn(12)
    conv = F.conv1d if ndim == 1 else F.conv2d
    expected = conv(wpt.cascade_forward(x.double()), weight.double().reshape(12, -1, *(1,) * ndim), bias.double())
    got = wpt.project(x.cuda(), weight.cuda(), bias.cuda()).cpu().double()
    assert (got - expected).abs().max() <= 1e-4
    torch.testing.assert_close(wpt(x.cuda()).cpu(), wpt.cascade_forward(x), atol=1e-4, rtol=0)


def test_cuda_intermediates_are_left_to_the_caching_allocator(monkeypatch):
    """Kept CPU buffers avoid page faults; on CUDA they would outlive empty_cache and ignore streams."""
    monkeypatch.setitem(WaveletPacketTransform.forward.__globals__, "REUSE_BYTES", 0)
    wpt = WaveletPacketTransform("bior4.4", 3, 2).cuda()
    wpt.project(torch.rand(2, 3, 64, 64, device="cuda"), torch.randn(12, 192, device="cuda"))
    assert wpt._scratch().buffers == {}


@pytest.mark.parametrize("decoder", ["linear", "conv"])
def test_walloc_fits_and_transforms_on_cuda_like_on_the_cpu(crops, decoder):
    params = dict(J=2, latent_dim=12, decoder=decoder, max_epochs=2, random_state=0, batch_size=4)
    gpu = WaLLoCTransformer(device="cuda", **params).fit(crops)
    assert next(gpu.codec_.parameters()).device.type == "cuda"
    cpu = WaLLoCTransformer(device="cpu", **params).fit(crops)
    Z_gpu = gpu.transform(crops)
    np.testing.assert_allclose(Z_gpu, cpu.transform(crops), atol=0.05)  # same statistics, float summation order
    codes = gpu.set_params(quantize=True).transform(crops)
    assert codes.dtype == np.int8
    rec = gpu.inverse_transform(codes)
    assert rec.shape == crops.shape and np.isfinite(rec).all()
    assert gpu.score(crops) > 20  # dB: a working codec, not just a running one
    again = WaLLoCTransformer(device="cuda", **params).fit(crops)  # random_state seeds the CUDA generator too
    np.testing.assert_allclose(again.loss_curve_, gpu.loss_curve_, rtol=1e-3)  # cuDNN sums in any order


def test_audio_codec_on_cuda():
    clips = np.stack([np.resize(synthesize(w), (2, 8192)) for w in ["left", "right", "up", "down"]]).astype(np.float32)
    model = WaLLoCTransformer(J=8, latent_dim=27, device="cuda", batch_size=2).fit(clips)
    reference = WaLLoCTransformer(J=8, latent_dim=27, device="cpu", batch_size=2).fit(clips)
    np.testing.assert_allclose(model.transform(clips), reference.transform(clips), atol=0.05)


@pytest.mark.parametrize("make", [lambda d: ResolutionReducer(4, device=d), lambda d: DCTTransformer(16, device=d)])
def test_baselines_on_cuda_match_the_cpu(crops, make):
    np.testing.assert_allclose(make("cuda").fit(crops).transform(crops), make("cpu").fit(crops).transform(crops),
                               atol=1e-4)  # fmt: skip


def test_a_transform_moved_back_to_the_cpu_holds_no_gpu_memory():
    gc.collect()
    before = torch.cuda.memory_allocated()
    wpt = WaveletPacketTransform("bior4.4", 3, 2).cuda()
    moved = torch.cuda.memory_allocated()  # its filter buffers
    with torch.no_grad():
        wpt.project(torch.rand(2, 3, 64, 64, device="cuda"), torch.randn(12, 192, device="cuda"))
    assert torch.cuda.memory_allocated() > moved  # the matmul operands it converted for CUDA
    wpt.cpu()  # ... go with the move
    assert torch.cuda.memory_allocated() == before
    assert wpt.project(torch.rand(1, 3, 64, 64), torch.randn(12, 192)).device.type == "cpu"


def test_cuda_without_an_index_names_the_device_tensors_are_on():
    from walloc_features._device import torch_device

    assert torch_device("cuda") == torch.zeros(1, device="cuda").device  # so a codec already there is not moved
    with pytest.raises(ValueError, match=f"{torch.cuda.device_count()} CUDA device.s. are visible"):
        torch_device(f"cuda:{torch.cuda.device_count()}")


def test_models_follow_a_device_set_after_fit(crops, tmp_path):
    """EnCodec's model stayed where fit put it (batches on one device, weights on the other); the classifiers'
    autocast stayed as fit chose it (CUDA autocast on the CPU warned; a CPU fit moved to CUDA ran in float32)."""
    from transformers import EncodecConfig, EncodecModel

    from walloc_features.estimators import MLPHeadClassifier
    from walloc_features.features import EnCodecTransformer

    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 1, 2400)).astype(np.float32)
    folder = str(tmp_path)  # a tiny random model saved as a checkpoint is laid out: nothing is downloaded
    model = EncodecModel(EncodecConfig(sampling_rate=2400, upsampling_ratios=[8, 4], num_filters=4, hidden_size=16,
                                       codebook_dim=16, num_lstm_layers=1, num_residual_layers=1))
    for layer in model.quantizer.layers:  # random codebooks (fresh ones are zeros: every code 0)
        layer.codebook.embed.normal_()
    model.save_pretrained(folder)
    codec = EnCodecTransformer(model=folder, bandwidth=1.5).fit(clips)
    on_cpu = codec.transform(clips)
    assert len(np.unique(on_cpu)) > 1
    np.testing.assert_array_equal(codec.set_params(device="cuda").transform(clips), on_cpu)
    assert codec.set_params(device="cpu").inverse_transform(on_cpu).shape == clips.shape
    Z, y = crops.reshape(len(crops), -1)[:, :64].astype(np.float32), np.arange(len(crops)) % 2
    head = MLPHeadClassifier(hidden_layer_sizes=(8,), max_epochs=2, early_stopping=False).fit(Z, y)
    head.set_params(device="cuda").predict(Z)
    assert head.net_.autocast_dtype == torch.bfloat16
    head.set_params(device="cpu").predict(Z)
    assert head.net_.autocast_dtype is None


def test_resolution_inverse_runs_on_the_device_and_matches_the_cpu(crops, monkeypatch):
    gpu, cpu = ResolutionReducer(4, device="cuda").fit(crops), ResolutionReducer(4).fit(crops)
    Z = cpu.transform(crops)
    expected = cpu.inverse_transform(Z)
    devices, interpolate = [], F.interpolate

    def recorded(x, *args, **kwargs):
        devices.append(x.device.type)
        return interpolate(x, *args, **kwargs)

    monkeypatch.setattr(F, "interpolate", recorded)
    np.testing.assert_allclose(gpu.inverse_transform(Z), expected, atol=1e-4)
    assert devices and set(devices) == {"cuda"}  # it resized on the CPU whatever device said



@pytest.mark.parametrize("model", ["lstm", "vit"])
def test_flop_counts_of_fused_kernels_are_the_same_on_cuda(model):
    """cuDNN's recurrent kernel and the GPU attention kernels are priced as the CPU's: a count does not depend
    on the device."""
    from timm import create_model

    from walloc_features.evaluation import count_flops

    torch.manual_seed(0)
    if model == "lstm":
        module, x = torch.nn.LSTM(6, 8, num_layers=2, bidirectional=True), torch.randn(10, 3, 6)
    else:
        module, x = create_model("test_vit", img_size=32, num_classes=2).eval(), torch.randn(2, 3, 32, 32)
    on_cpu = count_flops(module, x)
    assert on_cpu > 0
    assert count_flops(module.cuda(), x.cuda()) == on_cpu
