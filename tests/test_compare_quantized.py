"""compare_quantized_strategies: every strategy on the same codes, one table of accuracy and costs."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from walloc_features import ResidualVQ, WaLLoCTransformer
from walloc_features.estimators import CodeEmbeddingClassifier
from walloc_features.evaluation import compare_quantized_strategies, default_strategies
from walloc_features.evaluation.quantized import COLUMNS
from walloc_features.quantized import Dequantize, OneHotCodes, PackedCodes


@pytest.fixture(scope="module")
def rvq_table(mnist):
    X, y = mnist
    return compare_quantized_strategies(
        ResidualVQ(reduction=16, random_state=0), X[:3000], y[:3000], X_test=X[-1000:], y_test=y[-1000:]
    )


def test_default_comparison_reports_every_strategy_and_cost(rvq_table):
    assert list(rvq_table.columns) == COLUMNS
    assert list(rvq_table.index) == [
        "dequantize + logistic", "one-hot + logistic", "bit planes + logistic", "packed pairs + logistic",
        "hashed + logistic", "dequantize + MLP", "embedding (normal init) + MLP", "embedding (ordinal init) + MLP",
    ]  # fmt: skip
    assert rvq_table.attrs["code_shape"] == (1, 7, 7) and rvq_table.attrs["code_range"] == (0, 255)
    assert rvq_table.attrs["n_train"] == 3000 and rvq_table.attrs["n_test"] == 1000
    assert (rvq_table.fit_time_s > 0).all() and (rvq_table.predict_time_s > 0).all()
    assert (rvq_table.flops_per_sample > 0).all() and (rvq_table.train_bytes > 0).all()


def test_costs_are_those_of_the_representation_and_classifier(rvq_table):
    row = rvq_table.loc["dequantize + logistic"]
    assert row.feature_dim == 49 and row.train_bytes == 3000 * 49 * 4  # float32 values
    assert row.flops_per_sample == 2 * 49 * 10  # one multiply-add per (input, class)
    onehot = rvq_table.loc["one-hot + logistic"]
    assert 49 < onehot.feature_dim <= 49 * 256  # only the (position, symbol) pairs seen in fit
    nnz = 3000 * 49
    assert onehot.train_bytes == nnz * (4 + 4) + (3000 + 1) * 4  # sparse: values, indices, row pointers
    assert onehot.flops_per_sample == pytest.approx(2 * 49 * 10, rel=0.01)  # unseen test symbols light nothing
    assert rvq_table.loc["bit planes + logistic", "feature_dim"] == 49 * 8
    embedding = rvq_table.loc["embedding (normal init) + MLP"]
    assert embedding.train_bytes == 3000 * 49  # the uint8 codes themselves
    assert embedding.feature_dim == 49 * 8


def test_categorical_codes_want_one_weight_per_symbol(rvq_table):
    """Codebook indices carry no order: one-hot and embeddings beat reading them as numbers."""
    accuracy = rvq_table.accuracy
    assert accuracy["one-hot + logistic"] >= 0.85
    assert accuracy["one-hot + logistic"] > accuracy["dequantize + logistic"] + 0.15
    assert accuracy["embedding (normal init) + MLP"] > accuracy["dequantize + MLP"] + 0.1
    assert accuracy["hashed + logistic"] >= accuracy["one-hot + logistic"] - 0.02  # few collisions in 2**16


def test_ordinal_codes_want_their_values(mnist):
    """WaLLoC's companded latents are ordered: their value beats a per-symbol table for a linear model."""
    X, y = mnist
    strategies = {
        "value": make_pipeline(Dequantize(), StandardScaler(), LogisticRegression(max_iter=1000)),
        "one-hot": make_pipeline(OneHotCodes(alphabet=(-127, 127), handle_unknown="ignore"), LogisticRegression()),
    }
    table = compare_quantized_strategies(
        WaLLoCTransformer(reduction=16), X[:3000], y[:3000], strategies=strategies, test_size=1000, random_state=0
    )
    assert table.attrs["code_dtype"] == "int8" and table.attrs["code_range"] == (-127, 127)  # quantize=True set
    assert table.loc["value", "accuracy"] >= 0.85
    assert table.loc["value", "accuracy"] > table.loc["one-hot", "accuracy"] + 0.03


def test_packed_symbols_feed_an_embedding_and_are_counted_as_such(mnist):
    X, y = mnist
    packed_embedding = make_pipeline(
        PackedCodes(2, axis=-1, alphabet=(-127, 127), handle_unknown="clip", output="codes"),
        CodeEmbeddingClassifier(embedding_dim=4, max_epochs=2, random_state=0),
    )
    table = compare_quantized_strategies(
        WaLLoCTransformer(reduction=16), X[:600], y[:600], strategies={"packed": packed_embedding}, test_size=200
    )
    row = table.loc["packed"]
    assert row.feature_dim == 7 * 4 * 4  # 7 x 4 packed symbols (pairs along rows, padded), 4 dims each
    assert row.train_bytes == 400 * 28 * 2  # uint16 symbols
    assert row.representation == "PackedCodes" and row.classifier == "CodeEmbeddingClassifier"


def test_default_strategies_leave_out_pairs_too_wide_to_one_hot():
    assert "packed pairs + logistic" in default_strategies((0, 255))
    wide = default_strategies((-1024, 1023))  # JPEG coefficients: pairs would need 2**22 symbols
    assert "packed pairs + logistic" not in wide and "one-hot + logistic" in wide


def test_comparison_refuses_continuous_features_and_half_a_test_set(mnist):
    X, y = mnist
    strategies = {"value": make_pipeline(Dequantize(), LogisticRegression())}
    scaled = FunctionTransformer(lambda Z: Z.reshape(len(Z), -1) / 255.0)
    with pytest.raises(ValueError, match="integer codes"):
        compare_quantized_strategies(scaled, X[:200], y[:200], strategies=strategies)
    with pytest.raises(ValueError, match="both X_test and y_test"):
        compare_quantized_strategies(scaled, X[:200], y[:200], X_test=X[200:300])
    lone = np.r_[y[:199], 10]  # sklearn spoke of "groups" and "the least populated classes"
    with pytest.raises(ValueError, match=r"class\(es\) \[10\] have a single sample"):
        compare_quantized_strategies(scaled, X[:200], lone, strategies=strategies)


def test_steps_between_representation_and_classifier_are_priced_as_run_benchmark_prices_them(mnist):
    """A PCA after the values was charged 0: the table counted the classifier alone (400 FLOPs for 2,360)."""
    from sklearn.decomposition import NMF, PCA

    X, y = mnist
    strategies = {"pca": make_pipeline(Dequantize(), PCA(20), LogisticRegression(max_iter=200)),
                  "nmf": make_pipeline(Dequantize(), FunctionTransformer(abs), NMF(5, max_iter=20),
                                       LogisticRegression(max_iter=200)),
                  "flat": make_pipeline(FunctionTransformer(lambda c: c.reshape(len(c), -1)),  # a representation
                                        LogisticRegression(max_iter=200))}  # of another kind: 0, not unknown
    table = compare_quantized_strategies(
        WaLLoCTransformer(reduction=16), X[:600], y[:600], strategies=strategies, test_size=200, random_state=0
    )
    assert table.loc["pca", "flops_per_sample"] == 2 * 49 * 20 + 2 * 20 * 10
    assert np.isnan(table.loc["nmf", "flops_per_sample"])  # unknown, not free
    assert table.loc["flat", "flops_per_sample"] == 2 * 49 * 10
