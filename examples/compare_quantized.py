"""Which way of training on quantized codes works best? Every strategy on WaLLoC and ResidualVQ codes.

Encodes the embedded MNIST digits (8,000 train / 2,000 test) at 16x with WaLLoC
(``quantize=True``: 8-bit companded latents, ordinal) and with ResidualVQ (8-bit codebook
indices, categorical), then trains every quantized-input strategy on each and prints one
table per codec. Runs in about 45 s on two CPU cores:

    python examples/compare_quantized.py
"""

from __future__ import annotations

from walloc_features import ResidualVQ, WaLLoCTransformer
from walloc_features.datasets import load_mnist
from walloc_features.evaluation import compare_quantized_strategies


def main() -> None:
    X, y = load_mnist()
    train, test = slice(0, 8000), slice(8000, 10000)
    codecs = {
        "WaLLoC 16x, quantize=True": WaLLoCTransformer(reduction=16, quantize=True),
        "ResidualVQ 16x (256 centres)": ResidualVQ(reduction=16, random_state=0),
    }
    for title, codec in codecs.items():
        table = compare_quantized_strategies(codec, X[train], y[train], X_test=X[test], y_test=y[test])
        shown = table.assign(train_MB=table.train_bytes / 1e6, kflops=table.flops_per_sample / 1e3)
        shown = shown[["accuracy", "fit_time_s", "predict_time_s", "feature_dim", "train_MB", "kflops"]]
        attrs = table.attrs
        print(f"\n{title}: codes {attrs['code_shape']} {attrs['code_dtype']} in {attrs['code_range']}, "
              f"{attrs['n_train']} train / {attrs['n_test']} test, encoded in {attrs['encode_time_s']:.1f} s")
        print(shown.to_string(float_format="{:.4g}".format))
        best = table.accuracy.idxmax()
        runner_up = table.accuracy.drop(best).max()
        print(f"best: {best} ({table.accuracy[best]:.4f}, +{table.accuracy[best] - runner_up:.4f} over the next)")


if __name__ == "__main__":
    main()
