"""The fast inference encoder (matmul passes, folded projection and input scale) equals the straightforward one.

Inference runs :meth:`WaveletPacketTransform.forward` as batched matmuls and :meth:`project` without
putting the packets in channel order; training keeps the strided convolutions (cheap autograd). Both
must be the level-by-level cascade followed by a 1x1 convolution, to <= 1e-4 on real signals.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from walloc_features.codecs import WaLLoCCodec, WaveletPacketTransform
from walloc_features.datasets import synthesize

CASES = [  # (ndim, levels, spatial size): sizes shorter than the fused filters and not square included;
    # 1 to 8 positions a window in each pass (see test_images_take_several_positions_a_window_where_they_divide)
    (2, 1, (8, 6)), (2, 1, (6, 8)), (2, 1, (8, 32)), (2, 2, (40, 8)), (2, 2, (12, 8)), (2, 2, (16, 32)),
    (2, 3, (64, 64)), (2, 3, (16, 24)), (2, 4, (32, 48)),
    (1, 1, (2,)), (1, 3, (64,)), (1, 4, (256,)), (1, 5, (2**15,)), (1, 8, (256,)), (1, 8, (2**12,)),
]  # fmt: skip


def matmul_calls(wpt, monkeypatch):
    """Count the calls of the matmul passes (the inference path), letting them run."""
    calls = []
    for name in ("_matmul_1d", "_matmul_2d", "_project_1d"):
        method = getattr(WaveletPacketTransform, name)
        monkeypatch.setattr(wpt, name, lambda *a, _m=method, _n=name, **k: calls.append(_n) or _m(wpt, *a, **k))
    return calls


def straightforward(wpt, x, weight, bias):
    packets = wpt.cascade_forward(x)
    conv = F.conv1d if wpt.ndim == 1 else F.conv2d
    return conv(packets, weight.reshape(*weight.shape, *(1,) * wpt.ndim), bias)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("ndim", "levels", "size"), CASES)
def test_inference_and_training_paths_equal_the_cascade(ndim, levels, size, batch, monkeypatch):
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.randn(batch, 3, *size, dtype=torch.float64)
    reference = wpt.cascade_forward(x)
    calls = matmul_calls(wpt, monkeypatch)
    torch.testing.assert_close(wpt(x), reference, atol=1e-12, rtol=0)
    assert calls == ([] if ndim == 2 and levels > 3 else ["_matmul_1d" if ndim == 1 else "_matmul_2d"])
    calls.clear()
    torch.testing.assert_close(wpt(x.clone().requires_grad_()).detach(), reference, atol=1e-12, rtol=0)
    assert calls == []  # gradients flow: the strided convolutions


@pytest.mark.parametrize("latents", [5, 30])  # 5: block-diagonal over pairs (wider: copied apart); 30: copied apart
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("ndim", "levels", "size"), CASES)
def test_project_is_a_1x1_convolution_of_the_packets(ndim, levels, size, batch, latents):
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *size, dtype=torch.float64, generator=gen)
    weight = torch.randn(latents, wpt.output_channels(3), dtype=torch.float64, generator=gen)
    bias = torch.randn(latents, dtype=torch.float64, generator=gen)
    expected = straightforward(wpt, x, weight, bias)
    torch.testing.assert_close(wpt.project(x, weight, bias), expected, atol=1e-11, rtol=0)
    unbiased = expected - bias.view(1, latents, *(1,) * ndim)
    torch.testing.assert_close(wpt.project(x, weight), unbiased, atol=1e-11, rtol=0)


@pytest.mark.parametrize(("levels", "size", "column", "row"), [
    (1, (8, 6), 4, 3), (1, (6, 8), 3, 4), (1, (8, 32), 4, 8), (2, (40, 8), 2, 2), (2, (12, 8), 1, 2),
    (2, (16, 32), 2, 4), (3, (64, 64), 1, 2), (3, (16, 24), 1, 1),
])  # fmt: skip
def test_images_take_several_positions_a_window_where_they_divide(levels, size, column, row):
    # The thin products of one position a window ran several times slower under MKL: up to 8 filters a
    # window down the columns (8 / s positions) and 16 along the rows (max(2, 16 / s)), where they divide.
    wpt = WaveletPacketTransform("bior4.4", levels, 2)
    assert wpt._wide_operand(levels, size[0] >> levels, torch.float64, "cpu")[1] == column
    assert wpt._matmul_2d(torch.randn(1, 3, *size, dtype=torch.float64), levels).shape[5] == row


@pytest.mark.parametrize("signals", [(1, 2), (20, 2)])  # (N, C): a few segments each; one each past 32 columns
@pytest.mark.parametrize(("levels", "size"), [(1, 64), (4, 256), (5, 2**10), (8, 2**12)])  # s: 2; 8, 2; 8, 4; 8, 4
def test_audio_projection_stays_on_its_wide_path(levels, size, signals, monkeypatch):
    wpt = WaveletPacketTransform("bior4.4", levels, 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*signals, size, dtype=torch.float64, generator=gen)
    weight = torch.randn(7, wpt.output_channels(signals[1]), dtype=torch.float64, generator=gen)
    bias = torch.randn(7, dtype=torch.float64, generator=gen)
    expected = straightforward(wpt, x, weight, bias)
    calls = matmul_calls(wpt, monkeypatch)
    torch.testing.assert_close(wpt.project(x, weight, bias), expected, atol=1e-11, rtol=0)
    assert calls == ["_project_1d"]  # no fallback to the packets in channel order


@pytest.mark.parametrize("dtype", [torch.float32, torch.int16])  # integers convert in the copy
@pytest.mark.parametrize("length", [74, 80, 4096])  # runs of 2 samples (a single strided copy), of 20, of 32
def test_audio_segments_are_copied_time_major(length, dtype, reuse_every_buffer):
    from walloc_features.codecs.wavelets import _copy_segments_time_major, _Workspace

    x = torch.randint(-1000, 1000, (2, 3, 5 * length)).to(dtype)
    dst = torch.empty(length, 3, 2, 5)
    _copy_segments_time_major(dst, x, _Workspace())
    assert torch.equal(dst, x.view(2, 3, 5, length).permute(3, 1, 0, 2).float())


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 64)), (2, 4, (32, 48)), (1, 8, (2**12,))])
def test_project_folds_the_input_scale_into_the_weight_on_every_path(ndim, levels, size):
    """``project(x, W, b, scale=s)`` is the projection of ``x * s``: fast paths, convolutions, gradients;
    and a cached operand built for one scale never serves another."""
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, 3, *size), generator=gen).to(torch.uint8)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64, generator=gen)
    bias = torch.randn(12, dtype=torch.float64, generator=gen)
    scales = (1 / 255, 1.0, 2.0, 1 / 255)
    expected = [straightforward(wpt, x.double() * scale, weight, bias) for scale in scales]
    for scale, reference in zip(scales, expected, strict=True):  # uint8 pixels are filtered in the weight's dtype
        torch.testing.assert_close(wpt.project(x, weight, bias, scale=scale), reference, atol=1e-9, rtol=0)
    for scale, reference in zip(scales, expected, strict=True):
        single = wpt.project(x, weight.float(), bias.float(), scale=scale)
        assert single.dtype == torch.float32
        torch.testing.assert_close(single.double(), reference, atol=1e-5 * float(reference.abs().max()), rtol=0)
    trainable = weight.clone().requires_grad_()
    scaled = wpt.project(x.double(), trainable, bias, scale=0.5)  # the strided convolutions
    torch.testing.assert_close(scaled, straightforward(wpt, x.double() * 0.5, weight, bias), atol=1e-9, rtol=0)
    scaled.sum().backward()
    expected_grad = 0.5 * wpt.cascade_forward(x.double()).flatten(2).sum((0, 2)).expand(12, -1)
    torch.testing.assert_close(trainable.grad, expected_grad, atol=1e-6, rtol=1e-9)


@pytest.mark.parametrize("matmul", [True, False])
@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 4, (64, 64)), (1, 8, (256,)), (2, 3, (64, 64))])
def test_a_float32_codec_encodes_float64_signals_on_every_path(ndim, levels, size, matmul):
    """The codec hands its own Parameters (which require grad even under no_grad) to ``project``: float64
    input must still be encoded, with and without gradients, whichever path runs."""
    codec = WaLLoCCodec(3, 12, levels=levels, ndim=ndim).eval()
    codec.wpt.matmul_inference = matmul
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    weight, bias = codec.encoder.weight.detach().double().flatten(1), codec.encoder.bias.detach().double()
    expected = straightforward(codec.wpt, x, weight, bias)
    with torch.no_grad():
        z = codec.analysis(x)
    torch.testing.assert_close(z, expected, atol=1e-5, rtol=0)  # the float32 weight, exact float64 filters
    trained = codec.analysis(x)  # grad mode: the convolutions, gradients reach the float32 weight
    torch.testing.assert_close(trained.detach(), expected, atol=1e-5, rtol=0)
    trained.sum().backward()
    assert codec.encoder.weight.grad is not None and codec.encoder.weight.grad.dtype == torch.float32


def test_float32_photos_within_1e4_of_the_straightforward_encoder(photos):
    """256x256 crops of real photos, float32, pixel scale [0, 1]: the issue's tolerance."""
    x = torch.from_numpy(np.stack([p[:256, :256].transpose(2, 0, 1) for p in photos.values()]) / 255).float()
    wpt = WaveletPacketTransform("bior4.4", 3, 2)
    weight, bias = torch.randn(12, 192) / 8, torch.randn(12)
    fast = wpt.project(x, weight, bias)
    assert (fast - straightforward(wpt, x.double(), weight.double(), bias.double())).abs().max() <= 1e-4


def test_uint8_input_is_scaled_and_converted_inside_the_encoder(photos):
    """``encode(uint8, scale=1/255)`` is ``encode(float / 255)``, with and without a folded input shift."""
    pixels = torch.from_numpy(np.stack([p[:64, :96].transpose(2, 0, 1) for p in photos.values()]))
    for shift in (0.0, -0.5):
        codec = WaLLoCCodec(3, 12, levels=3, input_shift=shift, input_gain=2.0).eval()
        with torch.no_grad():
            expected = codec.encode(pixels.float() / 255)
            torch.testing.assert_close(codec.encode(pixels, scale=1 / 255), expected, atol=1e-4, rtol=0)
            manual = F.conv2d(codec.wpt.cascade_forward(2.0 * (pixels.double() / 255 + shift)),
                              codec.encoder.weight.double(), codec.encoder.bias.double())  # fmt: skip
            assert (codec.analysis(pixels, scale=1 / 255) - manual).abs().max() <= 1e-4


def test_padded_audio_encoder_keeps_the_bias_on_its_border_frames():
    """The published 1-D layout (1x1 conv with padding=1) through the fast path."""
    clip = np.stack([np.resize(synthesize("left"), 4096), np.resize(synthesize("right"), 4096)])
    x = torch.from_numpy(clip[None]).float()
    codec = WaLLoCCodec(2, 27, levels=8, ndim=1, decoder="oobleck", n_blocks=2, encoder_padding=1,
                        hidden_channels=32, input_gain=0.5).eval()  # fmt: skip
    with torch.no_grad():
        expected = codec.encoder(codec.wpt.cascade_forward(0.5 * x))
        assert codec.analysis(x).shape == expected.shape == (1, 27, 4096 // 256 + 2)
        torch.testing.assert_close(codec.analysis(x), expected, atol=1e-4, rtol=0)


def test_transform_reads_flipped_read_only_and_uint8_inputs_like_contiguous_floats(photos):
    """The encoder reads batches without copying them when it can: every other layout gives the same codes."""
    from walloc_features import WaLLoCTransformer

    pixels = np.stack([p[:64, :64].transpose(2, 0, 1) for p in photos.values()])
    floats = (pixels / np.float32(255)).astype(np.float32)
    model = WaLLoCTransformer(J=3, latent_dim=12, batch_size=3).fit(floats)
    expected = model.transform(floats)
    np.testing.assert_allclose(model.transform(pixels), expected, rtol=1e-5, atol=1e-4)  # uint8: scale folded in
    flipped = model.transform(floats[:, :, ::-1])
    np.testing.assert_allclose(flipped, model.transform(np.ascontiguousarray(floats[:, :, ::-1])), atol=0)
    read_only = floats.copy()
    read_only.setflags(write=False)
    np.testing.assert_allclose(model.transform(read_only), expected, atol=0)


def test_torch_only_sees_writeable_contiguous_batches(photos, monkeypatch):
    """torch.from_numpy takes neither read-only memory nor negative strides: such batches are copied first."""
    import walloc_features.features._base as base
    from walloc_features import WaLLoCTransformer

    pixels = np.stack([p[:32, :32].transpose(2, 0, 1) for p in photos.values()])
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=2).fit(pixels)
    seen, from_numpy = [], torch.from_numpy
    def spy(array):
        seen.append(array.flags.writeable and array.flags.c_contiguous)
        return from_numpy(array)

    monkeypatch.setattr(base.torch, "from_numpy", spy)
    read_only = pixels.copy()
    read_only.setflags(write=False)
    model.transform(read_only)
    model.transform(pixels[:, :, ::-1])
    assert seen and all(seen)


def test_padded_encoder_borders_hold_the_bias_alone_when_a_shift_is_folded():
    codec = WaLLoCCodec(2, 8, levels=4, ndim=1, decoder="oobleck", n_blocks=2, encoder_padding=1,
                        hidden_channels=16, input_shift=-0.5, input_gain=0.5).eval()  # fmt: skip
    x = torch.rand(2, 2, 512)
    with torch.no_grad():
        torch.testing.assert_close(codec.analysis(x), codec.encoder(codec.packets(x)), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("ndim", "size"), [(1, (256,)), (2, (16, 16))])
def test_empty_batches_encode_to_empty_latents(ndim, size):
    codec = WaLLoCCodec(3, 12, levels=3, ndim=ndim).eval()
    with torch.no_grad():
        assert codec.encode(torch.rand(0, 3, *size)).shape == (0, 12, *(n // 8 for n in size))


@pytest.mark.parametrize(("ndim", "levels"), [(1, 8), (2, 3), (2, 4)])
def test_project_names_a_weight_of_the_wrong_width(ndim, levels):
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.rand(1, 3, *(2**levels * 2,) * ndim)
    with pytest.raises(ValueError, match=f"{wpt.output_channels(3)} channels"):
        wpt.project(x, torch.rand(12, 100))


def test_autograd_still_works_after_inference_mode_filled_the_caches():
    codec = WaLLoCCodec(3, 12, levels=3, input_shift=-0.5)
    with torch.inference_mode():
        codec.encode(torch.rand(1, 3, 32, 32))
    codec.train()
    loss = codec.encode(torch.rand(2, 3, 32, 32)).square().mean()
    loss.backward()
    assert codec.encoder.weight.grad is not None and torch.isfinite(codec.encoder.weight.grad).all()


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 64)), (1, 8, (2**15,))])
def test_matmul_inference_can_be_switched_off(ndim, levels, size, monkeypatch):
    """``matmul_inference=False`` (used for FLOP counts) runs the convolutions, with the same result."""
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64)
    fast = wpt.project(x, weight)
    wpt.matmul_inference = False
    calls = matmul_calls(wpt, monkeypatch)
    torch.testing.assert_close(wpt.project(x, weight), fast, atol=1e-11, rtol=0)
    torch.testing.assert_close(wpt(x), wpt.cascade_forward(x), atol=1e-12, rtol=0)
    assert calls == []


def test_projection_follows_weights_changed_in_place_even_through_data():
    """The projection operands are cached on the weight's values, so no edit can leave them stale."""
    codec = WaLLoCCodec(3, 12, levels=3).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        codec.encode(x)  # fills the cache
        codec.encoder.weight.data[3, 7] += 1.0  # .data: no version-counter bump
        codec.encoder.bias.data[5] -= 2.0
        expected = straightforward(codec.wpt, x, codec.encoder.weight.flatten(1), codec.encoder.bias)
        torch.testing.assert_close(codec.analysis(x), expected, atol=1e-4, rtol=0)
        codec.encoder.weight.mul_(-1)
        expected = straightforward(codec.wpt, x, codec.encoder.weight.flatten(1), codec.encoder.bias)
        torch.testing.assert_close(codec.analysis(x), expected, atol=1e-4, rtol=0)


def test_gradients_reach_the_projection_weight_on_the_fast_path_every_time():
    """With a constant input (no gradient) and a trainable weight, each call builds its own graph."""
    wpt = WaveletPacketTransform("bior4.4", 3, 2)
    x = torch.rand(1, 3, 64, 64)
    weight = torch.randn(12, 192, requires_grad=True)
    with torch.no_grad():
        wpt.project(x, weight)  # a cached, graph-free operand must not be reused below
    for _ in range(2):
        weight.grad = None
        wpt.project(x, weight).sum().backward()
        expected = wpt.cascade_forward(x).sum((2, 3)).sum(0).expand(12, -1)  # d(sum z) / dW
        torch.testing.assert_close(weight.grad, expected, atol=1e-3, rtol=1e-5)


def test_a_cached_projection_carries_no_graph_into_later_calls():
    """Filled under no_grad from parameters that require grad, the cache must not hand their graph on."""
    codec = WaLLoCCodec(3, 12, levels=3).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        codec.analysis(x)
    codec.requires_grad_(False)
    z = codec.analysis(x)  # grad mode on, nothing to track
    assert not z.requires_grad
    assert z.numpy().shape == (1, 12, 8, 8)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # torch.func imports it
def test_forward_mode_and_functorch_see_through_the_projection_cache():
    wpt = WaveletPacketTransform("bior4.4", 3, 2)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    weight, tangent = torch.randn(12, 192, dtype=torch.float64), torch.randn(12, 192, dtype=torch.float64)
    value = wpt.project(x, weight)  # fills the cache with these very values
    _, jvp = torch.func.jvp(lambda w: wpt.project(x, w), (weight,), (tangent,))
    torch.testing.assert_close(jvp, wpt.project(x, tangent))  # linear in the weight
    batched = torch.func.vmap(lambda w: wpt.project(x, w))(torch.stack([weight, tangent]))
    torch.testing.assert_close(batched[0], value)
    torch.testing.assert_close(batched[1], wpt.project(x, tangent))  # each weight of the batch its own projection


REUSE_CASES = [(2, 3, (64, 64), 1), (2, 3, (64, 64), 3), (2, 2, (16, 32), 2), (1, 8, (2**12,), 1), (1, 5, (2**15,), 3)]


@pytest.fixture
def reuse_every_buffer(monkeypatch):
    """Keep intermediates of any size between calls, so small signals exercise the reuse of large ones."""
    # the module the transform's code reads (its doctests, collected on their own, can import a second copy)
    monkeypatch.setitem(WaveletPacketTransform.forward.__globals__, "REUSE_BYTES", 0)


@pytest.mark.parametrize(("ndim", "levels", "size", "batch"), REUSE_CASES)
def test_results_never_share_the_buffers_reused_between_calls(ndim, levels, size, batch, reuse_every_buffer):
    """The passes keep their intermediates for the next call; what a call returns must survive that call."""
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x, other = torch.rand(2, batch, 3, *size, dtype=torch.float64)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64)
    with torch.inference_mode():
        projected, packets = wpt.project(x, weight), wpt(x)
        kept = projected.clone(), packets.clone()
        wpt.project(other, weight), wpt(other)
    torch.testing.assert_close((projected, packets), kept, atol=0, rtol=0)
    torch.testing.assert_close(projected, straightforward(wpt, x, weight, None), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("ndim", "levels", "size", "batch"), REUSE_CASES)
def test_repeated_calls_reuse_the_same_buffers(ndim, levels, size, batch, reuse_every_buffer):
    """A second call of the same size allocates no intermediates: fresh multi-megabyte buffers can come
    from pages the allocator returned to the system, and page-faulting through them again cost a stereo
    clip's encoder half its time on an AMD EPYC host."""
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.rand(batch, 3, *size)
    weight = torch.randn(12, wpt.output_channels(3))
    with torch.no_grad():
        wpt.project(x, weight)
        before = {key: t.data_ptr() for key, t in wpt._scratch().buffers.items()}
        wpt.project(x, weight)
    assert before and {key: t.data_ptr() for key, t in wpt._scratch().buffers.items()} == before


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 64)), (1, 8, (2**15,))])
def test_threads_sharing_a_transform_get_their_own_buffers(ndim, levels, size, reuse_every_buffer):
    from concurrent.futures import ThreadPoolExecutor

    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    inputs = torch.rand(8, 1, 3, *size, dtype=torch.float64)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64)
    expected = [straightforward(wpt, x, weight, None) for x in inputs]

    def encode(i):
        with torch.no_grad():
            return [wpt.project(inputs[i], weight) for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        for i, results in enumerate(pool.map(encode, range(len(inputs)))):
            for result in results:
                torch.testing.assert_close(result, expected[i], atol=1e-10, rtol=0)


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 64)), (1, 8, (2**15,))])
def test_forward_mode_tangents_flow_through_the_input(ndim, levels, size):
    """A dual input takes the convolutions (matmul's out= drops tangents): its tangent is the transform's."""
    import torch.autograd.forward_ad as fwAD

    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x, tangent = torch.rand(2, 1, 3, *size, dtype=torch.float64)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(wpt.project(fwAD.make_dual(x, tangent), weight))
        packets = fwAD.unpack_dual(wpt(fwAD.make_dual(x, tangent)))
    torch.testing.assert_close(out.tangent, straightforward(wpt, tangent, weight, None), atol=1e-10, rtol=0)
    torch.testing.assert_close(packets.tangent, wpt.cascade_forward(tangent), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("ndim", "levels", "size"), [(2, 3, (64, 64)), (1, 8, (2**15,))])
def test_a_product_kept_for_backward_survives_later_calls(ndim, levels, size, reuse_every_buffer):
    """With a trainable weight the last pass's result is saved for backward: later calls must not overwrite it."""
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x, other = torch.rand(2, 1, 3, *size, dtype=torch.float64)
    weight = torch.randn(12, wpt.output_channels(3), dtype=torch.float64, requires_grad=True)
    loss = wpt.project(x, weight).square().sum()
    with torch.no_grad():
        wpt.project(other, weight)
    loss.backward()
    reference = weight.detach().clone().requires_grad_(True)
    straightforward(wpt, x, reference, None).square().sum().backward()
    torch.testing.assert_close(weight.grad, reference.grad, atol=1e-8, rtol=1e-10)


def test_a_used_transform_pickles_and_copies_without_its_buffers(reuse_every_buffer):
    import copy
    import pickle

    wpt = WaveletPacketTransform("bior4.4", 3, 2)
    x, weight = torch.rand(1, 3, 64, 64), torch.randn(12, 192)
    with torch.no_grad():
        expected = wpt.project(x, weight)
    assert wpt._scratch().buffers
    for twin in (pickle.loads(pickle.dumps(wpt)), copy.deepcopy(wpt)):
        assert not twin._scratch().buffers
        with torch.no_grad():
            torch.testing.assert_close(twin.project(x, weight), expected, atol=0, rtol=0)


def test_small_intermediates_are_not_kept_between_calls():
    """Below REUSE_BYTES a fresh block is cheaper (often memory just freed, still in the caches): none is held."""
    wpt = WaveletPacketTransform("bior4.4", 3, 2)
    with torch.no_grad():
        wpt.project(torch.rand(1, 3, 64, 64), torch.randn(12, 192))
    assert wpt._scratch().buffers == {}


def test_large_intermediates_are_kept_between_calls():
    wpt = WaveletPacketTransform("bior4.4", 8, 1)
    with torch.no_grad():
        wpt.project(torch.rand(1, 2, 2**19), torch.randn(27, 512))
    assert {slot for slot, _, _ in wpt._scratch().buffers} == {"even", "odd", "runs"}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("ndim", "levels", "size"), [case for case in CASES if case[0] == 1])
def test_long_audio_fusing_pairs_of_levels_equals_the_cascade(ndim, levels, size, batch, monkeypatch):
    """Audio of PAIRED_LEVELS_SAMPLES or more fuses levels two by two: the same packets and projection."""
    monkeypatch.setitem(WaveletPacketTransform.forward.__globals__, "PAIRED_LEVELS_SAMPLES", 0)
    wpt = WaveletPacketTransform("bior4.4", levels, ndim)
    x = torch.rand(batch, 2, *size, dtype=torch.float64)
    weight, bias = torch.randn(5, wpt.output_channels(2), dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(wpt(x), wpt.cascade_forward(x), atol=1e-10, rtol=0)
        expected = straightforward(wpt, x, weight, bias)
        torch.testing.assert_close(wpt.project(x, weight, bias), expected, atol=1e-10, rtol=0)
