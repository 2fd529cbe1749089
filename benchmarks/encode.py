"""Encode throughput of WaLLoCTransformer against the published WaLLoC encoder, and codec fit time.

    python benchmarks/encode.py [--threads 2] [--repeats 20] [--skip-fit] [--json out.json]

Times, on the same inputs in one process: ``transform(quantize=True)`` (validation, batching and the
torch encoder: fused wavelet packet transform, 1x1 projection, companding, rounding) and, when the
authors' package ``walloc`` 1.2.1 is importable, its encoder
(``codec.encoder(codec.wavelet_analysis(x))``) twice: on tensors already scaled, so it is spared the
input conversion and our checks (the "published" column and its speed-up), and from the same samples
ours gets, converted as the authors' README does it (uint8 pixels ``.to(torch.float) / 255 - 0.5``,
audio ``0.5 x``: the "from raw" columns). Cases: RGB 512x512 at 16x and 4x, batch 1 and 16, 256 RGB
32x32 crops (CIFAR's size) at 16x, and stereo audio of 2**19 samples at 20x (J=8). Throughput in
megapixels / megasamples per second, the ratios published / ours (> 1: ours is faster), the process's
peak RSS after each case, and a Pillow decode of a JPEG of the same image as a yardstick (called in turn
with our batch-1 encoder). Figures on a shared machine are noisy: compare the ratios, which come from
one process and interleaved calls. The "alone" columns time ours and the published encoder (pre-scaled
input) again, each in turns of 5 calls back to back: the steady-state throughput of a stream of calls,
caches warm, and its ratio. Ours alone against ours interleaved is what the published encoder's
intermediates cost us by evicting our operands and buffers from the caches (most visible at batch 1).
Last, where the time of one 512x512 RGB image at 16x goes: the nested calls ``transform`` >
``codec.encode`` > ``wpt.project`` > the filter passes, each timed alone, and their differences.
"""

import argparse
import io
import json
import platform
import resource
import time
import warnings

import numpy as np
import torch
from PIL import Image
from skimage import data

from walloc_features import WaLLoCTransformer
from walloc_features.datasets import synthesize


def photo_batch(n, size=512):
    """n size x size RGB crops of scikit-image's bundled photos, taken from each in turn, (n, 3, size, size) uint8."""
    if not 1 <= size <= 512:
        raise ValueError(f"size must be in [1, 512], got {size}")
    photos = [data.astronaut(), data.stereo_motorcycle()[0][:512, :512], data.coffee()[:, :512]]
    tiles = [np.pad(p, ((0, 512 - p.shape[0]), (0, 512 - p.shape[1]), (0, 0)), mode="reflect") for p in photos]
    per_side = 512 // size  # small crops tile each photo
    crops = [t[y * size : (y + 1) * size, x * size : (x + 1) * size]
             for y in range(per_side) for x in range(per_side) for t in tiles]  # fmt: skip
    return np.ascontiguousarray(np.stack([crops[i % len(crops)].transpose(2, 0, 1) for i in range(n)]))


def stereo_speech(n, length=2**19):
    """n stereo clips of synthetic speech (a sentence per channel, repeated), peak 1, (n, 2, length)."""
    sentences = ["the quick brown fox jumps over the lazy dog", "compressed domain learning with wavelets"]
    channels = [np.resize(synthesize(s), length) for s in sentences]
    clip = np.stack([c / np.abs(c).max() for c in channels]).astype(np.float32)
    return np.stack([np.roll(clip, 977 * i, axis=1) for i in range(n)])


def best_times(fns, repeats, block=1):
    """Best wall time of each function over at least ``repeats`` calls (whole turns), the functions taking turns.

    Taking turns exposes the candidates to the same load on a shared machine, so their ratio stays
    meaningful when the absolute times drift between runs. ``block=1``: one call each in turn, so
    every call follows the other candidates' (its caches as they left them). ``block > 1``: turns of
    ``block`` timed calls back to back, each turn after one untimed call, so the best time is that of
    a warm, steady stream of calls (throughput).
    """
    if repeats < 1 or block < 1:  # no timed call would leave nothing to take the best of
        raise ValueError(f"repeats and block must be at least 1, got repeats={repeats}, block={block}")
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(-(-repeats // block)):
        for fn, spent in zip(fns, times, strict=True):
            if block > 1:
                fn()  # the first call of a turn follows the other candidates: untimed
            for _ in range(block):
                start = time.perf_counter()
                fn()
                spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def best_time(fn, repeats):
    return best_times([fn], repeats)[0]


def batch1_breakdown(model, X, repeats):
    """Milliseconds of the stages of ``model.transform(X)`` for one image: nested calls, each timed alone.

    ``_matmul_2d`` (the periodic input copy and the column and row passes) is private: this script
    follows the package's internals on purpose, to show where the batch-1 time goes.
    """
    codec = model.codec_
    x = torch.from_numpy(X)
    scale = 1 / 255
    stages = {
        "transform": lambda: model.transform(X),
        "encode": lambda: codec.encode(x, scale=scale),
        "project": lambda: codec.wpt.project(x, codec.encoder.weight, codec.encoder.bias, scale=scale),
        "passes": lambda: codec.wpt._matmul_2d(x, codec.wpt.levels),
    }
    ms = dict.fromkeys(stages, np.inf)
    with torch.no_grad():
        for _ in range(3):  # each stage alone (calls in turn would evict each other's buffers), three rounds
            for name, fn in stages.items():
                ms[name] = min(ms[name], 1e3 * best_time(fn, repeats))
    return {
        "total_ms": ms["transform"],
        "input copy and filter passes": ms["passes"],
        "projection": ms["project"] - ms["passes"],
        "companding": ms["encode"] - ms["project"],
        "validation, batching, rounding, output": ms["transform"] - ms["encode"],
    }


def cpu_model():
    """The CPU's model name, family and model (Linux's /proc/cpuinfo: a VM may show only the vendor's
    brand), else what ``platform`` knows: the figures depend on it."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
    return fields["model name"]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reference_encoder(kind, latent_dim):
    """The published encoder as a function of scaled tensors, or None without the walloc package."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from walloc.walloc import Codec1D, LinearCodec2D
    except ImportError as error:  # not installed; a broken install fails loudly instead of reading "n/a"
        print(f"published encoder unavailable ({error}): its columns read n/a")
        return None
    if kind == "image":  # LinearCodec2D's encoder and transform are Codec2D's, without the 57M-param decoder
        codec = LinearCodec2D(channels=3, J=3, latent_dim=latent_dim, latent_bits=8).eval()
    else:
        codec = Codec1D(channels=2, J=8, Ne=None, Nd=768, latent_dim=latent_dim, latent_bits=8,
                        lightweight_encode=True, post_filter=True).eval()  # fmt: skip

    def encode(x):
        with torch.no_grad():
            return codec.encoder(codec.wavelet_analysis(x, codec.J))

    return encode


def published_input(X, kind):
    """The published codecs' input from our raw samples, prepared as the authors' README does: uint8
    pixels to float, ``/ 255 - 0.5``; audio (float already) ``0.5 x``."""
    x = torch.from_numpy(X)
    return x.to(torch.float) / 255 - 0.5 if kind == "image" else 0.5 * x


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images = photo_batch(16)
    data_sets = {"RGB 512x512": images, "RGB 32x32": photo_batch(256, size=32), "stereo 2^19": stereo_speech(2)}
    cases = [("RGB 512x512", 16, 12, 1), ("RGB 512x512", 16, 12, 16), ("RGB 512x512", 4, 48, 1),
             ("RGB 512x512", 4, 48, 16), ("RGB 32x32", 16, 12, 256), ("stereo 2^19", 20, 27, 1)]  # fmt: skip
    rows, models = [], {}
    for signal, reduction, latent_dim, batch in cases:
        kind = "audio" if signal.startswith("stereo") else "image"
        X = data_sets[signal][:batch]
        params = dict(latent_dim=latent_dim, output="tensor", quantize=True, batch_size=batch)
        ours = WaLLoCTransformer(**params, J=3 if kind == "image" else 8).fit(data_sets[signal])
        samples = X[0].size // X.shape[1] * batch  # pixels or samples per channel, whole batch
        row = {"signal": signal, "reduction": reduction, "batch": batch}
        candidates = [lambda o=ours, x=X: o.transform(x)]
        reference = reference_encoder(kind, latent_dim)
        if reference is not None:
            scaled = published_input(X, kind)
            candidates.append(lambda f=reference, x=scaled: f(x))
            candidates.append(lambda f=reference, x=X, k=kind: f(published_input(x, k)))
        row["ours_s"], *published = best_times(candidates, args.repeats)
        if published:
            row["published_s"], row["published_from_raw_s"] = published
            row["speedup"] = row["published_s"] / row["ours_s"]
            row["speedup_from_raw"] = row["published_from_raw_s"] / row["ours_s"]
            # Each back to back (turns of 5 calls): the steady-state throughput of both, caches warm.
            row["ours_alone_s"], row["published_alone_s"] = best_times(candidates[:2], args.repeats, block=5)
            row["speedup_alone"] = row["published_alone_s"] / row["ours_alone_s"]
        row["ours_M_per_s"] = samples / row["ours_s"] / 1e6
        row["peak_rss_mb"] = peak_rss_mb()
        rows.append(row)
        models[signal, reduction, batch] = ours

    # The yardstick: decoding a JPEG of the first image, called in turn with the table's 16x batch-1 encoder
    # so the two see the same load (like ours against the published encoder above).
    jpeg = io.BytesIO()
    Image.fromarray(images[0].transpose(1, 2, 0)).save(jpeg, format="JPEG", quality=90)
    model = models["RGB 512x512", 16, 1]

    def decode():
        return np.asarray(Image.open(io.BytesIO(jpeg.getvalue())).convert("RGB"))

    ours_beside_jpeg_s, jpeg_s = best_times([lambda: model.transform(images[:1]), decode], args.repeats)

    print(f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'signal':<12} {'red.':>4} {'batch':>5} {'ours ms/item':>12} {'published':>10} {'speed-up':>8} "
          f"{'from raw':>8} {'speed-up':>8} {'ours M/s':>9} {'alone ms':>8} {'pub. alone':>10} {'speed-up':>8} "
          f"{'peak RSS MB':>11}")  # fmt: skip
    for r in rows:
        cells = [f"{1e3 * r[key] / r['batch']:.3g}" if key in r else "n/a"
                 for key in ("published_s", "published_from_raw_s", "ours_alone_s", "published_alone_s")]  # fmt: skip
        published, from_raw, alone, published_alone = cells
        speedup, speedup_raw, speedup_alone = (f"{r[key]:.2f}x" if key in r else "n/a"
                                               for key in ("speedup", "speedup_from_raw", "speedup_alone"))  # fmt: skip
        ours = 1e3 * r["ours_s"] / r["batch"]
        print(f"{r['signal']:<12} {r['reduction']:>3}x {r['batch']:>5} {ours:>12.3g} {published:>10} {speedup:>8} "
              f"{from_raw:>8} {speedup_raw:>8} {r['ours_M_per_s']:>9.1f} {alone:>8} {published_alone:>10} "
              f"{speedup_alone:>8} {r['peak_rss_mb']:>11.0f}")  # fmt: skip
    print(f"\nPillow decode of a quality-90 JPEG of the first image: {1e3 * jpeg_s:.2f} ms; ours (16x, batch 1) "
          f"called in turn with it: {1e3 * ours_beside_jpeg_s:.2f} ms, {ours_beside_jpeg_s / jpeg_s:.2f}x the decode")

    breakdown = batch1_breakdown(model, images[:1], args.repeats)
    print(f"\nbatch 1, RGB 512x512 at 16x, each stage timed alone: {breakdown['total_ms']:.2f} ms in all")
    for stage, ms in breakdown.items():
        if stage != "total_ms":
            print(f"  {stage:<40} {ms:6.3f} ms")

    result = {"machine": cpu_model(), "threads": args.threads,
              "torch": torch.__version__, "encode": rows, "jpeg_decode_s": jpeg_s,
              "ours_beside_jpeg_s": ours_beside_jpeg_s,
              "batch1_breakdown_ms": breakdown}  # fmt: skip
    if not args.skip_fit:
        rng = np.random.default_rng(0)
        source = photo_batch(3)
        crops = np.stack([
            source[i % 3][:, y : y + 128, x : x + 128]
            for i, (y, x) in enumerate(rng.integers(0, 512 - 128, size=(1000, 2)))
        ])  # fmt: skip
        start = time.perf_counter()
        codec = WaLLoCTransformer(reduction=16, decoder="conv", random_state=0).fit(crops)
        seconds = time.perf_counter() - start
        result["fit"] = {"crops": 1000, "size": 128, "decoder": "conv", "epochs": codec.n_iter_,
                         "seconds": seconds, "psnr_db": codec.score(crops[:100])}  # fmt: skip
        print(f"\nfit 16x conv codec on 1,000 128x128 crops: {seconds:.1f} s ({codec.n_iter_} epochs), "
              f"PSNR on 100 of them {result['fit']['psnr_db']:.2f} dB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
