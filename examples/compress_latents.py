"""Storage of WaLLoC latents: our entropy-coded blobs against tiled lossless WebP / PNG / TIFF.

Upstream WaLLoC stored its 8-bit latents as tiled uint8 images saved losslessly with Pillow. This
example stores the same latents both ways, one file per sample, on data that was not used to fit
the codec:

* photos: the five RGB photographs scikit-image ships as PNG (astronaut, chelsea, coffee,
  motorcycle, immunohistochemistry), each compressed by a codec fitted on crops of the other four
  (leave one out), at 16x and 4x;
* audio: one-second speech clips (the package's built-in speech commands), codec fitted on clips
  of other speakers, at 20x.

Run ``python examples/compress_latents.py --out storage`` (about a minute on 2 CPU cores;
``--quick``: two held-out photos, fewer crops and clips). It prints one table per
setting (bytes, bits per pixel / sample, compression ratio against 8-bit images / 16-bit PCM, our
size relative to the best image route, coder seconds) and writes them all to ``--out/storage.csv``.
"""

import argparse
import os

import numpy as np
import pandas as pd
import skimage
from PIL import Image

from walloc_features import WaLLoCTransformer
from walloc_features.cli import output_directory
from walloc_features.datasets import load_speech_commands
from walloc_features.evaluation.storage import compare_storage

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "ihc.png"]


def load_photos():
    """The RGB photographs as (3, H, W) uint8, cropped to multiples of 8."""
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    photos = {}
    for name in PHOTOS:
        image = np.asarray(Image.open(os.path.join(folder, name)).convert("RGB")).transpose(2, 0, 1)
        h, w = (s - s % 8 for s in image.shape[1:])
        photos[name.split(".")[0]] = image[:, :h, :w]
    return photos


def random_crops(images, n, size, rng):
    crops = []
    for i in range(n):
        image = images[i % len(images)]
        y, x = (rng.integers(0, s - size + 1) for s in image.shape[1:])
        crops.append(image[:, y : y + size, x : x + size])
    return np.stack(crops)


def photo_tables(reduction, n_crops, rng, held_out):
    photos = load_photos()
    tables = []
    for name, photo in list(photos.items())[:held_out]:
        others = [p for other, p in photos.items() if other != name]
        codec = WaLLoCTransformer(reduction=reduction, output="tensor").fit(random_crops(others, n_crops, 128, rng))
        table = compare_storage(codec, photo[None])
        tables.append(table.assign(photo=name))
    return pd.concat(tables)


def summarize(tables):
    """Totals over the photos per route: bytes, bits per pixel, coder seconds, ours relative to each."""
    tables = tables.assign(pixels=8 * tables["bytes"] / tables["bpp"])
    total = tables.groupby(level=0, sort=False)[["bytes", "pixels", "encode_seconds", "decode_seconds"]].sum()
    total["bpp"] = 8 * total["bytes"] / total.pop("pixels")
    total["ours_relative"] = total.loc["ours", "bytes"] / total["bytes"]
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two held-out photos, fewer crops and clips")
    parser.add_argument("--out", type=output_directory, default="storage", help="output directory (made at once)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    pd.set_option("display.width", 160)
    n_crops, held_out = (120, 2) if args.quick else (400, len(PHOTOS))
    results = []
    for reduction in (16, 4):
        tables = photo_tables(reduction, n_crops, rng, held_out)
        print(f"\nPhotos at {reduction}x (leave-one-out codecs), per photo: ours / best image route")
        print(tables.loc["ours"].set_index("photo")["relative_to_best_upstream"].round(3).to_string())
        print(summarize(tables).round(3).to_string())
        results.append(tables.assign(setting=f"photos {reduction}x"))
    X, _, speakers = load_speech_commands(n_speakers=12 if args.quick else 60)
    fit = speakers < np.quantile(speakers, 2 / 3)  # held-out clips are other speakers'
    codec = WaLLoCTransformer(reduction=20, output="tensor").fit(X[fit])
    print(f"\nSpeech at 20x ({codec.reduction_:.1f}x achieved), {(~fit).sum()} held-out one-second clips")
    table = compare_storage(codec, X[~fit])
    print(table.round(3).to_string())
    results.append(table.assign(setting="speech 20x"))
    pd.concat(results).rename_axis("route").to_csv(args.out / "storage.csv")
    print(f"\ntables: {args.out / 'storage.csv'}")


if __name__ == "__main__":
    main()
