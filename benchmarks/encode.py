"""Encode throughput of WaLLoCTransformer on 512x512 RGB photos, and codec fit time.

    python benchmarks/encode.py [--threads 2] [--repeats 5] [--json out.json]

Times ``transform`` (validation, batching and the torch encoder) at 16x and 4x for batch 1 and
batch 16, as images/s and megapixels/s, plus the fit of a 16x ``decoder="conv"`` codec on 1,000
random 128x128 crops. Figures on a shared machine are noisy: compare runs made in one process.
"""

import argparse
import json
import platform
import time

import numpy as np
import torch
from skimage import data

from walloc_features import WaLLoCTransformer


def photo_batch(n):
    """n 512x512 RGB crops of scikit-image's bundled photos, (n, 3, 512, 512) uint8."""
    photos = [data.astronaut(), data.stereo_motorcycle()[0][:512, :512], data.coffee()[:, :512]]
    tiles = [np.pad(p, ((0, 512 - p.shape[0]), (0, 512 - p.shape[1]), (0, 0)), mode="reflect") for p in photos]
    return np.stack([tiles[i % len(tiles)].transpose(2, 0, 1) for i in range(n)])


def best_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    images = photo_batch(16)
    for reduction in (16, 4):
        for batch in (1, 16):
            codec = WaLLoCTransformer(reduction=reduction, output="tensor", batch_size=batch).fit(images)
            X = images[:batch]
            seconds = best_time(lambda: codec.transform(X), args.repeats)
            rows.append({
                "reduction": reduction, "batch": batch, "ms_per_image": 1e3 * seconds / batch,
                "images_per_s": batch / seconds, "MP_per_s": batch * 512 * 512 / seconds / 1e6,
            })  # fmt: skip
    print(f"{'reduction':>9} {'batch':>5} {'ms/image':>9} {'images/s':>9} {'MP/s':>7}")
    for r in rows:
        print(f"{r['reduction']:>8}x {r['batch']:>5} {r['ms_per_image']:>9.2f} {r['images_per_s']:>9.1f} {r['MP_per_s']:>7.1f}")

    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "torch": torch.__version__, "encode": rows}  # fmt: skip
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
