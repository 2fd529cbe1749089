"""Reconstruction PSNR of WaLLoC and the baselines at the same reduction, on real photos.

Fits every transformer on random 64x64 crops of the top halves of scikit-image's four RGB photos
and scores 64 crops of their unseen bottom halves (the README's "Reconstruction at equal reduction"
table: ``inverse_transform(transform(X))`` with the default ``quantize=False``, so WaLLoC's latents are not
rounded, while ResidualVQ's codes are its reconstruction):

    python examples/compare_baselines.py            # about a minute on 2 CPU cores
"""

import time

import numpy as np
from skimage import data

from walloc_features import DCTTransformer, ResidualVQ, ResolutionReducer, WaLLoCTransformer
from walloc_features.evaluation import psnr


def crops(images, n, size, rng, lower_half):
    """``n`` random crops (n, 3, size, size) from the top or bottom halves of ``images``."""
    out = []
    for i in range(n):
        image = images[i % len(images)]
        half = image.shape[0] // 2
        top = half if lower_half else 0
        y = rng.integers(top, top + half - size + 1)
        x = rng.integers(0, image.shape[1] - size + 1)
        out.append(image[y : y + size, x : x + size].transpose(2, 0, 1))
    return np.stack(out)


def main():
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.stereo_motorcycle()[0]]
    rng = np.random.default_rng(0)
    train = crops(photos, 600, 64, rng, lower_half=False)
    test = crops(photos, 64, 64, rng, lower_half=True)
    print(f"{'reduction':>9}  {'transformer':<34}{'bits/code':>9}{'PSNR dB':>9}{'fit s':>7}")
    for reduction in (16, 4):
        models = {
            "WaLLoC, linear decoder": WaLLoCTransformer(reduction),
            "WaLLoC, conv decoder": WaLLoCTransformer(reduction, decoder="conv", max_epochs=8, random_state=0),
            "ResolutionReducer (bicubic)": ResolutionReducer(reduction),
            "DCTTransformer (zig-zag)": DCTTransformer(reduction),
            "ResidualVQ (4x4 patches)": ResidualVQ(reduction, random_state=0),
        }
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(train)
            seconds = time.perf_counter() - start
            score = psnr(test / 255, model.inverse_transform(model.transform(test)), axis=(1, 2, 3)).mean()
            print(f"{model.reduction_:>8g}x  {name:<34}{model.bits_per_code_:>9}{score:>9.2f}{seconds:>7.1f}")


if __name__ == "__main__":
    main()
