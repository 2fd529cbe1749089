"""Quickstart: classify the embedded MNIST digits from WaLLoC latents (16x fewer numbers).

Runs offline in about 20 seconds on a laptop CPU (two cores):

    python examples/quickstart.py
"""

import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from walloc_features import WaLLoCTransformer
from walloc_features.datasets import load_mnist


def main():
    # lbfgs stops at its default 100 iterations on raw pixels; the scores are still meaningful.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = load_mnist()  # 10,000 digits, 28x28 uint8, in a fixed shuffled order
    X_train, y_train, X_test, y_test = X[:8000], y[:8000], X[8000:], y[8000:]
    pixels = X_train.reshape(len(X_train), -1)

    print(f"{'features':<22}{'classifier':<22}{'numbers/digit':>14}{'accuracy':>10}{'fit s':>8}")
    for name, make_classifier in [
        ("logistic regression", lambda: LogisticRegression()),
        ("scaler + RBF SVC", lambda: Pipeline([("scale", StandardScaler()), ("svc", SVC())])),
    ]:
        start = time.perf_counter()
        model = make_classifier().fit(pixels / 255, y_train)
        seconds = time.perf_counter() - start
        accuracy = model.score(X_test.reshape(len(X_test), -1) / 255, y_test)
        print(f"{'raw pixels':<22}{name:<22}{784:>14}{accuracy:>10.4f}{seconds:>8.1f}")

        start = time.perf_counter()
        model = Pipeline([("walloc", WaLLoCTransformer(reduction=16)), ("clf", make_classifier())])
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
        codec = model.named_steps["walloc"]
        accuracy = model.score(X_test, y_test)
        dims = codec.latent_shape_[0] * codec.latent_shape_[1] * codec.latent_shape_[2]
        print(f"{'WaLLoC 16x latents':<22}{name:<22}{dims:>14}{accuracy:>10.4f}{seconds:>8.1f}")

    print(
        f"\nWaLLoC codec: latents {codec.latent_shape_} per digit (reduction {codec.reduction_:g}x, "
        f"J={codec.J_}), round-trip PSNR {codec.score(X_test):.2f} dB at {codec.latent_bits} bits"
    )


if __name__ == "__main__":
    main()
