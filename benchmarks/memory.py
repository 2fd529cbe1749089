"""Peak memory of WaLLoCTransformer.transform over a memmap much larger than the batch.

    python benchmarks/memory.py [--gigabytes 20] [--batch-size 64] [--path /tmp/walloc-memmap.u8] [--stream] [--keep]
                                [--hdf5] [--json out.json]

Writes (once; ``--keep`` leaves it for the next run) a uint8 memmap of 512x512 RGB crops of
scikit-image's photos, fits a 16x codec on 32 of them, then transforms the whole file with
``quantize=True`` (int8 codes, 1/16 of the input) and reports the process's resident memory: its
current RSS before ``transform`` and the peak during it (``VmHWM`` reset through
``/proc/self/clear_refs``, so the fit's peak does not count; Linux only), plus throughput.
``--stream`` writes the codes to a file as they come (``transform_batches`` over slices of the
memmap) instead of returning them, so not even the output is held. ``--hdf5`` copies the images into an
HDF5 dataset (one chunk an image; needs h5py) and transforms that instead, which ``transform`` reads a
batch at a time as well. The issue's target: 20 GB under 2 GB of peak RSS.
"""

import argparse
import json
import os
import re
import time

import numpy as np
from skimage import data

from walloc_features import WaLLoCTransformer

SIZE = 512


def status(key: str) -> int:
    """Bytes of ``key`` (VmRSS, VmHWM) in /proc/self/status."""
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024


def write_memmap(path: str, n: int) -> None:
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.stereo_motorcycle()[0]]
    photos = [np.pad(p, ((0, max(0, SIZE - p.shape[0])), (0, max(0, SIZE - p.shape[1])), (0, 0)), mode="reflect")
              .transpose(2, 0, 1) for p in photos]  # fmt: skip
    X = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n, 3, SIZE, SIZE))
    rng = np.random.default_rng(0)
    chunk = 256
    for start in range(0, n, chunk):
        for i in range(start, min(n, start + chunk)):
            src = photos[i % len(photos)]
            y, x = rng.integers(0, src.shape[1] - SIZE + 1), rng.integers(0, src.shape[2] - SIZE + 1)
            X[i] = src[:, y : y + SIZE, x : x + SIZE]
        X.flush()
    del X


def as_hdf5(X: np.ndarray, path: str):
    """``X`` copied into an HDF5 dataset at ``path`` (256 images at a time), opened for reading."""
    import h5py  # only for --hdf5

    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("images", shape=X.shape, dtype=X.dtype, chunks=(1, *X.shape[1:]))
        for start in range(0, len(X), 256):
            dataset[start : start + 256] = X[start : start + 256]
    return h5py.File(path, "r")["images"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=20.0)
    parser.add_argument("--path", default="/tmp/walloc-memmap.u8")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--hdf5", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    n = int(args.gigabytes * 1e9 // (3 * SIZE * SIZE))
    try:  # a full disk or Ctrl-C while writing must not leave gigabytes behind either
        if not os.path.exists(args.path) or os.path.getsize(args.path) != n * 3 * SIZE * SIZE:
            start = time.perf_counter()
            write_memmap(args.path, n)
            print(f"wrote {n} images ({n * 3 * SIZE * SIZE / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
        X = np.memmap(args.path, dtype=np.uint8, mode="r", shape=(n, 3, SIZE, SIZE))
        if args.hdf5:
            X = as_hdf5(X, args.path + ".h5")
        model = WaLLoCTransformer(reduction=16, quantize=True, output="tensor", batch_size=args.batch_size)
        model.fit(np.array(X[:32]))
        model.transform(np.array(X[:32]))  # warm-up
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak RSS restarts from the current RSS
        before = status("VmRSS")
        start = time.perf_counter()
        if args.stream:
            codes = 0
            with open(args.path + ".codes", "wb") as out:
                slices = (X[i : i + 1024] for i in range(0, n, 1024))
                for Z in model.transform_batches(slices):
                    out.write(Z.tobytes())
                    codes += Z.nbytes
            os.remove(args.path + ".codes")
        else:
            codes = model.transform(X).nbytes
        seconds = time.perf_counter() - start
        peak = status("VmHWM")
    finally:
        if not args.keep and os.path.exists(args.path):
            os.remove(args.path)
        if os.path.exists(args.path + ".h5"):
            os.remove(args.path + ".h5")
    kind = "HDF5 dataset" if args.hdf5 else "memmap"
    result = {"images": n, "input": kind, "input_gb": n * 3 * SIZE * SIZE / 1e9, "codes_gb": codes / 1e9,
              "batch_size": args.batch_size,
              "stream": args.stream,
              "rss_before_gb": before / 1e9, "peak_rss_gb": peak / 1e9, "seconds": seconds,
              "megapixels_per_s": n * SIZE * SIZE / seconds / 1e6}  # fmt: skip
    print(f"{result['input_gb']:.2f} GB {kind} ({n} RGB 512x512) -> {result['codes_gb']:.2f} GB of codes in "
          f"{seconds:.0f} s ({result['megapixels_per_s']:.0f} MP/s); RSS {result['rss_before_gb']:.2f} GB before "
          f"transform, peak {result['peak_rss_gb']:.2f} GB during it")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
