"""Equal training compute: a timm CNN on WaLLoC 16x latents against the same CNN on pixels.

Trains ``TimmClassifier("test_resnet")`` on the embedded MNIST digits, once on raw pixels
(``RawSignal(output="tensor")``, 1x28x28) and on WaLLoC 16x latents (``output="tensor"``, 1x7x7).
The latent model runs first for as many epochs as the pixel model (which also measures its
forward FLOPs), then for as many epochs as the pixel model's training FLOPs pay for, counting
the encoding of the training set (the encoder's ``transform`` FLOPs) against the latent side.
Early stopping is off, so every model trains exactly the epochs it is given. Prints accuracy,
training GFLOPs (3 x forward x samples x epochs, + encoding) and seconds for each:

    python examples/timm_equal_compute.py            # 8,000 train / 2,000 test: about 4 min on 2 CPU cores
    python examples/timm_equal_compute.py --quick    # 500 / 200 digits, 2 pixel epochs: about 15 s

Measured (default mode, 4 min 16 s on 2 shared CPU cores): pixels, 5 epochs: 0.984 accuracy,
3,053 GFLOPs, 140 s; WaLLoC 16x, same 5 epochs: 0.955, 1,159 GFLOPs, 41 s; WaLLoC 16x, equal
compute (13 epochs, 2.64x fewer FLOPs per sample): 0.961, 3,013 GFLOPs, 63 s. At equal
training FLOPs the pixel CNN stays ahead on MNIST; the latent CNN is cheaper per epoch and
in wall-clock time.
"""

from __future__ import annotations

import argparse
import math
import time

import pandas as pd

from walloc_features import WaLLoCTransformer
from walloc_features.cli import output_directory
from walloc_features.datasets import load_mnist
from walloc_features.estimators import TimmClassifier
from walloc_features.evaluation import transform_flops_per_sample
from walloc_features.features import RawSignal


def train_cnn(Z, y, epochs: int) -> TimmClassifier:
    """test_resnet trained for exactly ``epochs`` epochs (no early stopping, no validation split)."""
    model = TimmClassifier("test_resnet", max_epochs=epochs, batch_size=128, lr=3e-3, early_stopping=False,
                           random_state=0)  # fmt: skip
    return model.fit(Z, y)


def equal_compute_epochs(budget: float, encode_flops: float, flops_per_sample: float, n_train: int) -> int:
    """Most epochs (at least one) whose training plus encoding FLOPs stay within ``budget``."""
    per_epoch = 3 * flops_per_sample * n_train  # forward + backward, as TimmClassifier.training_flops_
    return max(1, math.floor((budget - encode_flops) / per_epoch))


def result(name: str, model: TimmClassifier, Z_test, y_test, encode_flops=0.0, encode_seconds=0.0) -> dict:
    return {
        "model": name,
        "input": "x".join(map(str, Z_test.shape[1:])),
        "epochs": model.n_epochs_,
        "MFLOPs/sample": model.flops_per_sample_ / 1e6,
        "train GFLOPs": (model.training_flops_ + encode_flops) / 1e9,
        "train s": model.fit_time_ + encode_seconds,
        "accuracy": model.score(Z_test, y_test),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="timm on WaLLoC latents vs on pixels at equal training compute.")
    parser.add_argument("--quick", action="store_true", help="tiny run for CI: 500 / 200 digits, 2 pixel epochs")
    parser.add_argument("--out", type=output_directory, help="also write the table to OUT/equal_compute.csv")
    args = parser.parse_args(argv)

    n_train, n_test, pixel_epochs = (500, 200, 2) if args.quick else (8000, 2000, 5)
    X, y = load_mnist()
    X_train, y_train = X[:n_train], y[:n_train]
    X_test, y_test = X[n_train : n_train + n_test], y[n_train : n_train + n_test]

    pixels = RawSignal(output="tensor").fit(X_train)
    pixel_model = train_cnn(pixels.transform(X_train), y_train, pixel_epochs)
    rows = [result("pixels", pixel_model, pixels.transform(X_test), y_test)]

    codec = WaLLoCTransformer(reduction=16, output="tensor").fit(X_train)
    start = time.perf_counter()
    Z_train = codec.transform(X_train)
    encode_seconds = time.perf_counter() - start
    encode_flops = transform_flops_per_sample(codec, X_train[:4]) * n_train
    Z_test = codec.transform(X_test)
    same_epochs = train_cnn(Z_train, y_train, pixel_epochs)
    rows.append(result("WaLLoC 16x, same epochs", same_epochs, Z_test, y_test, encode_flops, encode_seconds))

    epochs = equal_compute_epochs(pixel_model.training_flops_, encode_flops, same_epochs.flops_per_sample_, n_train)
    equal = train_cnn(Z_train, y_train, epochs)
    rows.append(result("WaLLoC 16x, equal compute", equal, Z_test, y_test, encode_flops, encode_seconds))

    table = pd.DataFrame(rows).set_index("model")
    print(f"test_resnet on {n_train} MNIST digits, tested on {n_test}; latent rows include encoding the training "
          f"set ({encode_flops / 1e9:.2f} GFLOPs, {encode_seconds:.1f} s)")  # fmt: skip
    print(table.to_string(float_format="{:.4g}".format))
    ratio = pixel_model.flops_per_sample_ / equal.flops_per_sample_
    print(f"equal compute: {epochs} latent epochs for {pixel_epochs} pixel epochs ({ratio:.2f}x fewer FLOPs a sample)")
    if args.out is not None:
        table.to_csv(args.out / "equal_compute.csv")
        print(f"table: {args.out / 'equal_compute.csv'}")


if __name__ == "__main__":
    main()
