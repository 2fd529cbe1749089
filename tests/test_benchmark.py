"""run_benchmark: the grid of pipelines x training-set sizes x repeats, its splits and its cost accounting."""

import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from walloc_features import RawSignal, ResolutionReducer, WaLLoCTransformer
from walloc_features.estimators import MLPHeadClassifier
from walloc_features.evaluation import count_flops, run_benchmark, transform_flops_per_sample
from walloc_features.evaluation.benchmark import RESULT_COLUMNS
from walloc_features.evaluation.flops import classifier_flops_per_sample
from walloc_features.quantized import OneHotCodes


@pytest.fixture(scope="module")
def digits(mnist):
    X, y = mnist
    return X[:900], y[:900]


def linear(features):
    return make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=300))


def test_one_row_per_pipeline_size_and_repeat(digits):
    X, y = digits
    pipelines = {"walloc": linear(WaLLoCTransformer(16)), "raw": linear(RawSignal())}
    table = run_benchmark(X, y, pipelines, train_sizes=[100, 0.5, 1.0], n_repeats=2, test_size=300)
    assert list(table.columns) == RESULT_COLUMNS
    assert len(table) == 2 * 3 * 2
    assert sorted(table.train_size.unique().tolist()) == [100, 300, 600]  # fractions of the 600-sample pool
    assert table.attrs["n_pool"] == 600 and table.attrs["n_test"] == 300
    assert table.accuracy.between(0, 1).all() and table.f1_macro.between(0, 1).all()
    full = table[(table.pipeline == "raw") & (table.train_size == 600)]
    assert full.accuracy.iloc[0] >= 0.8  # LR on 600 digits
    walloc = table[table.pipeline == "walloc"].iloc[0]
    assert walloc.feature_dim == 49 and walloc.reduction == 16 and walloc.features == "WaLLoCTransformer"
    assert np.isnan(walloc.bits_per_sample)  # continuous latents: no rate
    assert table[table.pipeline == "raw"].bits_per_sample.iloc[0] == 8  # uint8 pixels as stored


def test_f1_is_the_macro_average_over_classes(digits):
    """A model that always answers the majority class has micro F1 = accuracy, macro F1 about a fifth of it
    over 10 classes: f1_macro must be the latter."""
    from sklearn.dummy import DummyClassifier

    X, y = digits
    table = run_benchmark(X, y, {"majority": make_pipeline(RawSignal(), DummyClassifier())}, train_sizes=[300],
                          n_repeats=1, test_size=300)  # fmt: skip
    accuracy, f1 = table.accuracy.iloc[0], table.f1_macro.iloc[0]
    assert 0.05 < accuracy < 0.2 and f1 == pytest.approx(2 * accuracy / (1 + accuracy) / 10)  # one class's F1 / 10


def test_budget_subsets_are_stratified_and_differ_between_repeats(digits):
    X, y = digits
    from walloc_features.evaluation.benchmark import _subset

    a, b = _subset(y[:600], 100, 0), _subset(y[:600], 100, 1)
    assert len(a) == len(np.unique(a)) == 100 and set(a) != set(b)
    expected = np.bincount(y[:600]) / 600 * 100  # the pool's class proportions, scaled to 100
    assert np.abs(np.bincount(y[:600][a], minlength=10) - expected).max() <= 1


def test_cost_accounting_matches_hand_counts(digits):
    """Linear: 2 x features x classes per sample; torch: FlopCounterMode; training: 3 x forward x n x epochs."""
    X, y = digits
    mlp = MLPHeadClassifier((32,), max_epochs=2, early_stopping=False, random_state=0)
    pipelines = {
        "quantized": linear(WaLLoCTransformer(16, quantize=True)),
        "mlp": make_pipeline(WaLLoCTransformer(16), mlp),
    }
    table = run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=1, test_size=300).set_index("pipeline")
    quantized, torch_row = table.loc["quantized"], table.loc["mlp"]
    assert quantized.model_flops_per_sample == 2 * 49 * 10
    assert quantized.bits_per_sample == 8 / 16  # 8-bit codes, 16x fewer numbers
    hand = 2 * (49 * 32 + 32 * 10)  # two Linear layers
    assert torch_row.model_flops_per_sample == hand
    assert torch_row.training_flops == 3 * hand * 200 * 2
    codec = WaLLoCTransformer(16).fit(X[:600])
    encode = transform_flops_per_sample(codec, X[:4])  # the transform's own arithmetic (its convolutions)
    assert torch_row.encode_flops_per_sample == pytest.approx(encode)
    assert torch_row.total_gflops == pytest.approx((encode * 200 + torch_row.training_flops) / 1e9)


def test_linear_training_flops_count_solver_iterations_and_closed_forms_are_unknown(digits):
    from sklearn.linear_model import RidgeClassifier

    X, y = digits
    pipelines = {"lr": make_pipeline(RawSignal(), LogisticRegression(max_iter=50)),
                 "ridge": make_pipeline(RawSignal(), RidgeClassifier())}  # fmt: skip
    table = run_benchmark(X, y, pipelines, train_sizes=[300], n_repeats=1, test_size=300, random_state=None)
    lr, ridge = table.set_index("pipeline").loc["lr"], table.set_index("pipeline").loc["ridge"]
    assert lr.training_flops == 3 * (2 * 784 * 10) * 300 * 50  # lbfgs stops at max_iter on raw pixels
    assert ridge.model_flops_per_sample == 2 * 784 * 10 and np.isnan(ridge.training_flops)



def test_libsvm_models_with_a_linear_kernel_have_unknown_flops_not_a_linear_models(digits):
    """SVC(kernel="linear") has coef_ and n_iter_, so it was priced as a linear model: forward 2 D per class pair
    (8.7x too little: it computes its kernel against every support vector), training from SMO steps read as
    epochs (15x too much). Unknown instead, as the RBF SVC is; LinearSVC keeps its price."""
    from sklearn.svm import SVC, LinearSVC

    X, y = digits
    pipelines = {"svc": make_pipeline(RawSignal(), SVC(kernel="linear")),
                 "linearsvc": make_pipeline(RawSignal(), LinearSVC(max_iter=20))}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        table = run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=1, test_size=200).set_index("pipeline")
    assert np.isnan(table.loc["svc", "model_flops_per_sample"]) and np.isnan(table.loc["svc", "training_flops"])
    assert table.loc["linearsvc", "model_flops_per_sample"] == 2 * 784 * 10
    rows = X.reshape(len(X), -1)
    assert np.isnan(classifier_flops_per_sample(SVC(kernel="linear").fit(rows[:100], y[:100]), rows[:2]))

@pytest.mark.parametrize("legacy", [True, False, None], ids=["legacy-attributes", "new-attributes", "default"])
def test_a_cross_validated_linear_model_counts_every_fold_and_setting_and_its_refit(digits, legacy):
    from sklearn.linear_model import LogisticRegressionCV

    X, y = digits
    kwargs = dict(Cs=[100.0, 1000.0], cv=3, max_iter=3, l1_ratios=(0,), scoring="accuracy")
    if legacy is not None:  # (scikit-learn 1.8 and 1.9 have both layouts of n_iter_)
        if "use_legacy_attributes" not in LogisticRegressionCV().get_params():
            pytest.skip("this scikit-learn has one layout of LogisticRegressionCV's attributes")
        kwargs["use_legacy_attributes"] = legacy
    search = make_pipeline(RawSignal(), LogisticRegressionCV(**kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (lbfgs stopping at max_iter)
        table = run_benchmark(X, y, {"cv": search}, train_sizes=[300], n_repeats=1, test_size=300)
    # 2 Cs x 3 folds x 3 iterations on 200 samples, then the refit's 3 on all 300: 15 passes over 300
    assert table.training_flops.iloc[0] == 3 * (2 * 784 * 10) * 300 * 15


@pytest.mark.parametrize("cv, refit, passes", [(3, False, 2 * 3 * 3 * 2 / 3), ("shuffle", False, 4 * 3 * 0.25),
                                               ("shuffle", True, 4 * 3 * 0.25 + 3)])  # fmt: skip
def test_a_cross_validated_linear_model_counts_its_own_folds_and_no_refit_it_skipped(digits, cv, refit, passes):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import ShuffleSplit

    X, y = digits
    splitter = ShuffleSplit(4, train_size=0.25, random_state=0) if cv == "shuffle" else cv  # 75 of 300 samples
    Cs = [100.0] if cv == "shuffle" else [100.0, 1000.0]
    search = make_pipeline(RawSignal(), LogisticRegressionCV(Cs=Cs, cv=splitter, refit=refit, max_iter=3,
                                                             l1_ratios=(0,), scoring="accuracy"))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (lbfgs stopping at max_iter)
        table = run_benchmark(X, y, {"cv": search}, train_sizes=[300], n_repeats=1, test_size=300)
    assert table.training_flops.iloc[0] == pytest.approx(3 * (2 * 784 * 10) * 300 * passes)


def test_resampling_and_codebook_search_are_counted_analytically(digits):
    from walloc_features import ResidualVQ
    from walloc_features.evaluation import transform_flops_per_sample

    X, _ = digits
    resize = ResolutionReducer(16).fit(X[:100])  # 28x28 -> 7x7: bicubic taps widened 4x, two passes
    assert transform_flops_per_sample(resize, X[:4]) == 2 * (16 * 28 * 7 + 16 * 7 * 7)
    rvq = ResidualVQ(16, codebook_size=32, random_state=0).fit(X[:300])  # 4x4 patches, 49 codes
    assert transform_flops_per_sample(rvq, X[:4]) == 2 * 16 * 32 * 49


def test_a_walloc_inside_residual_vq_costs_what_it_costs_alone():
    """Wrapped, its matmul path was counted: 16% more than WaLLoC alone on RGB at J=3 (block-Toeplitz zeros)."""
    from walloc_features import ResidualVQ
    from walloc_features.evaluation import transform_flops_per_sample

    X = np.random.default_rng(0).random((40, 3, 64, 64)).astype(np.float32)
    alone = transform_flops_per_sample(WaLLoCTransformer(reduction=16).fit(X), X[:4])
    assert alone == 3 * 4 * 57 * 64 * 64 + 2 * 192 * 12 * 64  # 57-tap fused bank, both axes; 192 -> 12 projection
    rvq = ResidualVQ(n_codebooks=1, codebook_size=16, base=WaLLoCTransformer(reduction=16), random_state=0).fit(X)
    assert transform_flops_per_sample(rvq, X[:4]) == alone + 2 * 12 * 16 * 64  # + the search of 64 12-D vectors
    resize = ResolutionReducer(4).fit(X)  # an analytic count of its own, which a wrapping ResidualVQ dropped
    over_resize = ResidualVQ(n_codebooks=1, codebook_size=16, base=ResolutionReducer(4), random_state=0).fit(X)
    search = 2 * 3 * 16 * 32 * 32  # the 3 channels at each of the 32 x 32 output's positions, 16 centres
    assert transform_flops_per_sample(over_resize, X[:4]) == transform_flops_per_sample(resize, X[:4]) + search


def test_a_flop_count_changes_no_other_threads_transform_nor_the_path_a_user_chose():
    """The count flipped the codec's shared matmul_inference: another thread's transforms ran the convolutions
    meanwhile (379 of them differed, by up to 1.7e-4), and a user's False came back True."""
    import threading

    from walloc_features.evaluation import transform_flops_per_sample

    X = np.random.default_rng(0).random((8, 3, 64, 64)).astype(np.float32)
    codec = WaLLoCTransformer(reduction=16).fit(X)
    reference, differed, stop = codec.transform(X), [], threading.Event()

    def transform_meanwhile():
        while not stop.is_set():
            differed.append(not np.array_equal(codec.transform(X), reference))

    worker = threading.Thread(target=transform_meanwhile)
    worker.start()
    try:
        for _ in range(10):
            transform_flops_per_sample(codec, X[:4])
    finally:
        stop.set()
        worker.join()
    assert differed and not any(differed)
    codec.codec_.wpt.matmul_inference = False
    transform_flops_per_sample(codec, X[:2])
    assert codec.codec_.wpt.matmul_inference is False


def test_count_flops_of_a_small_conv_model_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    conv = 2 * (1 * 3 * 3) * 4 * 5 * 5  # multiply-adds per output value x outputs
    assert count_flops(model, torch.zeros(1, 1, 5, 5)) == conv + 2 * 100 * 3


def test_count_flops_of_a_model_that_feeds_a_parameter_view_to_a_submodule():
    """timm's attention pooling (a ViT with global_pool="map") passes its trainable latent query, expanded,
    to a submodule: counted as with gradients on, and the parameters stay trainable."""
    from timm import create_model
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("test_vit", global_pool="map", img_size=32, num_classes=2).eval()
    for module in model.modules():  # attention as counted products (torch prices the fused CPU kernel at 0)
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    x = torch.zeros(1, 3, 32, 32)
    with FlopCounterMode(display=False) as reference:  # gradients on: the counter does not trip
        model(x)
    assert count_flops(model, x) == reference.get_total_flops() > 0
    assert all(p.requires_grad for p in model.parameters())


def test_count_flops_of_fused_attention_equals_that_of_its_products():
    """timm's ViT attention runs as one fused CPU kernel torch has no formula for: its QK^T and AV products
    counted as 0 and left about 13% of a small ViT's FLOPs out; the count equals the unfused attention's."""
    from timm import create_model

    model = create_model("test_vit", img_size=32, num_classes=2).eval()
    x = torch.zeros(1, 3, 32, 32)
    fused = count_flops(model, x)
    for block in model.blocks:
        block.attn.fused_attn = False  # QK^T, softmax and AV as separate (counted) matrix products
    assert fused == count_flops(model, x)
    # (equal head sizes, or torch takes its unfused math kernel, counted without the formula)
    q, k, v = torch.randn(2, 4, 10, 16), torch.randn(2, 2, 7, 16), torch.randn(2, 2, 7, 16)  # 2 shared key heads
    attention = count_flops(lambda: nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    assert attention == 2 * 2 * 4 * 10 * 7 * (16 + 16)


def test_count_flops_of_torch_transformer_fast_paths_equals_their_unfused_count():
    """In eval mode without gradients, batch_first MultiheadAttention and TransformerEncoderLayer run one fused
    kernel each, which counted 0; the sequence-first modules (unfused) give the same weights' true count."""
    torch.manual_seed(0)
    x, memory = torch.randn(2, 10, 16), torch.randn(2, 7, 16)
    fast, slow = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), nn.TransformerEncoderLayer(16, 4, 32)
    assert count_flops(fast, x) == count_flops(slow, x.transpose(0, 1)) > 0
    fast, slow = nn.MultiheadAttention(16, 4, batch_first=True), nn.MultiheadAttention(16, 4)
    for keys in (x, memory):  # self-attention (one packed projection) and attention to another sequence
        fused = count_flops(lambda k=keys: fast(x, k, k, need_weights=False))
        assert fused == count_flops(lambda k=keys: slow(x.transpose(0, 1), k.transpose(0, 1), k.transpose(0, 1))) > 0


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN", "ignore:LSTM with projections")
@pytest.mark.parametrize(
    "lstm", [nn.LSTM(6, 8), nn.LSTM(6, 8, num_layers=2, bidirectional=True), nn.LSTM(6, 8, proj_size=4), nn.GRU(6, 8)]
)
def test_count_flops_of_recurrent_layers_counts_every_step_on_every_kernel(lstm):
    """oneDNN's LSTM layer (the CPU's) counted as 0 (EnCodec's encoder lost a fifth of its FLOPs); every
    kernel counts each step's input and hidden products, as the unfused cells do."""
    from walloc_features.evaluation.flops import _recurrent_flops

    x = torch.randn(50, 3, 6)  # 50 steps of 3 sequences
    hand = 2 * 50 * 3 * sum(w.numel() for name, w in lstm.named_parameters() if "weight" in name)
    with torch.backends.mkldnn.flags(enabled=False):  # the unfused cells: one counted product per step
        assert count_flops(lstm, x) == hand
    assert count_flops(lstm, x) == hand
    # cuDNN's kernel gets the same weights as one list (counted on shapes: CI has no GPU)
    assert _recurrent_flops(x.shape, [w.shape for w in lstm.parameters()]) == hand


def test_count_flops_leaves_a_training_model_as_it_was():
    """A count is a measurement: batch norm's running statistics and the modules' train mode are untouched."""
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_flops(model, torch.randn(8, 3)) == 2 * 3 * 3 * 8
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the count moved batch norm's statistics"
    assert all(m.training for m in model.modules())
    model[1].eval()  # a frozen batch norm inside a training model keeps its own mode
    count_flops(model, torch.randn(8, 3))
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_every_training_subset_holds_every_class_even_a_rare_one():
    """A stratified draw of 23 from 300 + 6 samples gives the rare class 0.45 samples, rounded to none:
    the logistic regression refused one class; with ten classes a model would never see the rare one."""
    from walloc_features.evaluation.benchmark import _subset

    rng = np.random.default_rng(0)
    X = rng.random((306, 1, 8, 8)).astype(np.float32)
    y = np.array(["common"] * 300 + ["rare"] * 6)
    table = run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[23, 0.5], n_repeats=3, test_size=0.25)
    assert len(table) == 6 and table.accuracy.notna().all()
    y_pool = np.repeat(np.arange(10), [200] * 9 + [2])
    for seed in range(20):
        assert set(y_pool[_subset(y_pool, 45, seed)]) == set(range(10))
    y_pool = np.repeat(np.arange(3), [60, 60, 1])  # one pool sample: train_test_split cannot stratify it
    for size in (3, 30, 60, 120):
        subset = _subset(y_pool, size, 0)
        assert len(subset) == len(set(subset)) == size and set(y_pool[subset]) == {0, 1, 2}
    assert set(_subset(np.arange(4), 4, 0)) == set(range(4))  # every class a single sample
    y = np.r_[np.zeros(59, int), np.ones(59, int), 2, 2]  # the test set takes one of the two
    table = run_benchmark(X[:120], y, {"raw": linear(RawSignal())}, train_sizes=[30], n_repeats=2, test_size=0.5)
    assert table.accuracy.notna().all()
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have a single sample: a stratified test split"):
        run_benchmark(X[:119], y[:-1], {"raw": linear(RawSignal())}, train_sizes=[30], n_repeats=1)
    balanced = np.repeat(np.arange(10), 50)  # nothing to fix: the stratified draw is kept as it is
    from sklearn.model_selection import train_test_split

    drawn, _ = train_test_split(np.arange(500), train_size=45, stratify=balanced, random_state=4)
    np.testing.assert_array_equal(_subset(balanced, 45, 4), drawn)


def test_a_failing_cell_is_named_or_recorded_as_error_score(digits):
    """KNN with 50 neighbours cannot fit 20 samples: raised with the cell named, or a NaN cell and a warning."""
    from sklearn.exceptions import FitFailedWarning
    from sklearn.neighbors import KNeighborsClassifier

    X, y = digits
    pipelines = {"raw": linear(RawSignal()), "knn": make_pipeline(RawSignal(), KNeighborsClassifier(50))}
    with pytest.raises(ValueError, match="n_neighbors") as failure:
        run_benchmark(X, y, pipelines, train_sizes=[20, 200], n_repeats=1, test_size=300)
    assert failure.value.__notes__ == ["in run_benchmark's cell: pipeline 'knn', train size 20, repeat 0"]
    failed_cell = "pipeline 'knn' at train size 20, repeat 0 failed \\(ValueError: Expected"
    with pytest.warns(FitFailedWarning, match=failed_cell):
        table = run_benchmark(X, y, pipelines, train_sizes=[20, 200], n_repeats=1, test_size=300, error_score=np.nan)
    failed = table[(table.pipeline == "knn") & (table.train_size == 20)].iloc[0]
    assert np.isnan(failed.accuracy) and np.isnan(failed.fit_seconds) and failed.classifier == "KNeighborsClassifier"
    assert table.drop(failed.name).accuracy.notna().all()
    with pytest.warns(FitFailedWarning, match="its accuracy reads error_score=0.0"):  # a number is recorded as given
        zero = run_benchmark(X, y, {"knn": pipelines["knn"]}, train_sizes=[20], n_repeats=1, test_size=300,
                             error_score=0.0)  # fmt: skip
    assert zero.accuracy.tolist() == [0.0] and np.isnan(zero.f1_macro.iloc[0])
    for bad in ("ignore", True):
        with pytest.raises(ValueError, match="error_score must be 'raise' or a number"):
            run_benchmark(X, y, pipelines, train_sizes=[200], error_score=bad)


def test_a_single_class_or_no_train_size_is_refused_before_any_encoding(digits):
    X, y = digits
    with pytest.raises(ValueError, match="y has 1 class; a benchmark of classifiers needs at least 2"):
        run_benchmark(X, np.zeros(len(X)), {"raw": linear(RawSignal())})
    with pytest.raises(ValueError, match="train_sizes is empty"):
        run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[])


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True])
def test_an_unusable_n_jobs_is_refused_before_the_features_are_encoded(digits, n_jobs, monkeypatch):
    """joblib only refused n_jobs=0 after every transformer had encoded the data."""
    X, y = digits
    encoded = []
    monkeypatch.setattr(RawSignal, "fit", lambda self, X, y=None: encoded.append(len(X)) or self)
    with pytest.raises(ValueError, match=rf"n_jobs must be None or a non-zero integer .*got {n_jobs!r}"):
        run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[50], n_repeats=1, n_jobs=n_jobs)
    assert encoded == []


def test_sizes_that_round_to_one_count_run_once_with_a_warning(digits):
    """0.5 and 0.5005 of a 600-sample pool are both 300: one size, said aloud (as learning_curve does)."""
    X, y = digits
    with pytest.warns(RuntimeWarning, match=r"give the counts \[300, 300\] of a pool of 600: duplicates removed"):
        table = run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[0.5, 0.5005], n_repeats=1,
                              test_size=300)  # fmt: skip
    assert table.train_size.tolist() == [300]


def test_cells_in_worker_processes_follow_the_callers_warning_filters(digits):
    """A ConvergenceWarning turned into an error by the caller stops a parallel run as it stops a serial one
    (before, workers started with their own filters: the CLI's --quiet could not silence them)."""
    from sklearn.exceptions import ConvergenceWarning

    X, y = digits
    pipelines = {"raw": make_pipeline(RawSignal(), LogisticRegression(max_iter=1))}
    for n_jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            with pytest.raises(ConvergenceWarning):
                run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=2, n_jobs=n_jobs)


def test_group_disjoint_test_set(digits):
    X, y = digits
    groups = np.arange(len(y)) % 30
    table = run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[1.0], n_repeats=1, test_size=0.3,
                          groups=groups)  # fmt: skip
    assert table.attrs["group_disjoint"] and table.attrs["n_test"] == 9 * 30  # 9 of 30 groups
    from walloc_features.evaluation.benchmark import _test_split

    pool, test = _test_split(y, groups, 0.3, 0)
    assert not set(groups[pool]) & set(groups[test])


@pytest.mark.parametrize("test_size, n_test", [(20, 20), (25, 30), (0.05, 20), (0.3, 120)])
def test_a_whole_test_size_counts_samples_with_groups_too(test_size, n_test):
    """40 groups of 10 samples: test_size=20 holds 20 samples (2 groups), as without groups, not 20 groups."""
    from walloc_features.evaluation.benchmark import _test_split

    y, groups = np.arange(400) % 5, np.arange(400) // 10
    pool, test = _test_split(y, groups, test_size, 0)
    assert len(test) == n_test and len(pool) == 400 - n_test  # 25 samples: 2.5 groups, rounded up to 3
    assert not set(groups[pool]) & set(groups[test])
    pool, test = _test_split(y, None, test_size, 0)  # without groups: the same count of samples
    assert len(test) == (test_size if isinstance(test_size, int) else round(test_size * 400))


@pytest.mark.parametrize("n_groups, size, test_size", [(25, 10, 70), (25, 1, 7)])
def test_a_whole_test_size_of_whole_groups_is_met_exactly(n_groups, size, test_size):
    """As a float fraction, 70 / 250 x 25 groups rounded up past 7 and took 80 samples."""
    from walloc_features.evaluation.benchmark import _test_split

    groups = np.repeat(np.arange(n_groups), size)
    y = np.arange(len(groups)) % 2 if size > 1 else groups % 2  # both classes on both sides
    assert len(_test_split(y, groups, test_size, 0)[1]) == test_size


@pytest.mark.parametrize(
    "n_groups, test_size, n_test_groups",
    [(25, 0.28, 7), (100, 0.07, 7), (10, 0.3, 3), (7, 0.5, 4), (25, np.float32(0.28), 7), (10, np.float16(0.3), 3)],
)
def test_a_fraction_of_groups_rounds_up_the_fraction_as_written(n_groups, test_size, n_test_groups):
    """ceil(fraction x n_groups) groups: in floats 0.28 x 25 = 7.000000000000001, which took 8."""
    from walloc_features.evaluation.benchmark import _test_split

    groups = np.repeat(np.arange(n_groups), 4)
    pool, test = _test_split(np.arange(len(groups)) % 2, groups, test_size, 0)
    assert len(np.unique(groups[test])) == n_test_groups and len(test) == 4 * n_test_groups
    assert not set(groups[pool]) & set(groups[test])


def test_a_fraction_taking_every_group_is_refused():
    from walloc_features.evaluation.benchmark import _test_split

    groups = np.repeat(np.arange(25), 4)
    with pytest.raises(ValueError, match="test_size=0.99 of 25 groups takes all of them"):
        _test_split(np.arange(100) % 2, groups, 0.99, 0)


@pytest.mark.parametrize("test_size", [0, 400, -5])
def test_a_whole_test_size_outside_the_data_is_refused_with_groups(test_size):
    from walloc_features.evaluation.benchmark import _test_split

    with pytest.raises(ValueError, match=f"test_size={test_size} samples"):
        _test_split(np.arange(400) % 5, np.arange(400) // 10, test_size, 0)


def test_group_disjoint_test_set_of_a_number_of_samples(digits):
    X, y = digits
    table = run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[1.0], n_repeats=1, test_size=60,
                          groups=np.arange(len(y)) % 30)  # fmt: skip
    assert table.attrs["n_test"] == 60 and table.attrs["n_pool"] == 840  # 2 of 30 groups of 30


def test_a_group_split_that_loses_a_class_is_refused(digits):
    X, y = digits
    groups = np.where(y == 3, 0, 1 + np.arange(len(y)) % 20)  # every 3 in one group
    with pytest.raises(ValueError, match=r"class\(es\) \[3\] out of the (pool|test set)"):
        for seed in range(10):  # one of the splits puts group 0 wholly on one side, as every split must
            run_benchmark(X, y, {"raw": linear(RawSignal())}, train_sizes=[1.0], n_repeats=1, groups=groups,
                          random_state=seed)  # fmt: skip


def test_features_are_encoded_once_per_transformer_and_cached(digits, tmp_path, monkeypatch):
    X, y = digits
    calls = []
    original = WaLLoCTransformer.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WaLLoCTransformer, "fit", counting_fit)
    pipelines = {"a": linear(WaLLoCTransformer(16)),
                 "b": make_pipeline(WaLLoCTransformer(16), LogisticRegression(max_iter=200))}  # fmt: skip
    memory = joblib.Memory(tmp_path, verbose=0)
    run_benchmark(X, y, pipelines, train_sizes=[100, 300], n_repeats=2, test_size=300, memory=memory)
    assert len(calls) == 1  # one transformer, 2 pipelines x 2 sizes x 2 repeats
    run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=1, test_size=300, memory=memory)
    assert len(calls) == 1  # a new budget sweep reuses the cached features


def test_cached_features_follow_the_checkpoint_file_and_the_package_source(digits, tmp_path, monkeypatch):
    """The cache key held the transformer's parameters only: a checkpoint rewritten at the same path (or edited
    package code under the same version) reused the old features."""
    from walloc_features.evaluation import benchmark

    X, y = digits
    path = tmp_path / "codec.pth"
    pipelines = {"codec": linear(WaLLoCTransformer(checkpoint=str(path)))}
    memory = joblib.Memory(tmp_path / "cache", verbose=0)

    def width():
        table = run_benchmark(X, y, pipelines, train_sizes=[100], n_repeats=1, test_size=300, memory=memory)
        return int(table.feature_dim.iloc[0])

    WaLLoCTransformer(16).fit(X[:200]).save(path, format="published")
    assert width() == 49
    WaLLoCTransformer(4).fit(X[:200]).save(path, format="published")  # another codec, same path and parameters
    assert width() == 196
    calls, original = [], WaLLoCTransformer.fit
    monkeypatch.setattr(WaLLoCTransformer, "fit", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    assert width() == 196 and calls == []  # nothing changed: cached
    monkeypatch.setattr(benchmark, "_source_digest", lambda: "edited")
    assert width() == 196 and calls == [1]  # the package's code changed: encoded again
    (tmp_path / "image").mkdir()  # a folder named like a setting ("modality": "image") is not a file read
    monkeypatch.chdir(tmp_path)
    assert benchmark._files_read(ResolutionReducer(16, modality="image")) == ()


def test_cached_features_follow_a_checkpoint_folder_named_without_a_path(digits, tmp_path, monkeypatch):
    """checkpoint="ckpt" (a folder in the working directory) looked like a setting, so nothing was stamped: the
    weights rewritten there kept the old features. Transformers now name the files they resolve."""
    X, y = digits
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    pipelines = {"codec": linear(WaLLoCTransformer(checkpoint="ckpt"))}
    memory = joblib.Memory(tmp_path / "cache", verbose=0)

    def width():
        table = run_benchmark(X, y, pipelines, train_sizes=[100], n_repeats=1, test_size=300, memory=memory)
        return int(table.feature_dim.iloc[0])

    WaLLoCTransformer(16).fit(X[:200]).save(tmp_path / "ckpt" / "codec.pth", format="published")
    assert width() == 49
    WaLLoCTransformer(4).fit(X[:200]).save(tmp_path / "ckpt" / "codec.pth", format="published")
    assert width() == 196


class _Wrapped(TransformerMixin, BaseEstimator):
    """A transformer whose parameter is a class (module level: joblib's cache key pickles it)."""

    def __init__(self, kind=WaLLoCTransformer):  # (a class with _source_files)
        self.kind = kind

    def fit(self, X, y=None):
        self.model_ = self.kind(16).fit(X)
        return self

    def transform(self, X):
        return self.model_.transform(X)


def test_the_cache_key_reads_past_parameters_that_are_classes_or_unknown_home_folders(digits, tmp_path):
    """A class as a parameter value has _source_files unbound (a TypeError), and "~nobody/x" raised RuntimeError
    where the fit's own FileNotFoundError belongs."""
    X, y = digits
    memory = joblib.Memory(tmp_path / "cache", verbose=0)
    table = run_benchmark(X, y, {"wrapped": linear(_Wrapped())}, train_sizes=[100], n_repeats=1, test_size=200,
                          memory=memory)  # fmt: skip
    assert int(table.feature_dim.iloc[0]) == 49
    with pytest.raises(FileNotFoundError, match="~nobody-here/ck.pth"):
        run_benchmark(X, y, {"codec": linear(WaLLoCTransformer(checkpoint="~nobody-here/ck.pth"))},
                      train_sizes=[100], n_repeats=1, test_size=200, memory=memory)  # fmt: skip


def test_model_flops_count_the_projections_before_the_classifier(digits):
    """A PCA in front of the classifier cost nothing in the tables (only the last step was counted), so the
    compute plot ranked raw + PCA + logistic cheapest; its fit (a decomposition) is unknown, not free."""
    from sklearn.decomposition import PCA

    X, y = digits
    pipelines = {"pca": make_pipeline(RawSignal(), StandardScaler(), PCA(10), LogisticRegression(max_iter=300)),
                 "scaled": make_pipeline(RawSignal(), StandardScaler(), LogisticRegression(max_iter=300))}  # fmt: skip
    table = run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=1, test_size=300).set_index("pipeline")
    assert table.loc["pca", "model_flops_per_sample"] == 2 * 784 * 10 + 2 * 10 * 10  # projection + 10 classes
    assert np.isnan(table.loc["pca", "training_flops"])
    assert table.loc["scaled", "model_flops_per_sample"] == 2 * 784 * 10  # scaling works value by value: 0
    assert table.loc["scaled", "training_flops"] > 0
    codes = {"one-hot": make_pipeline(ResolutionReducer(16, quantize=True), OneHotCodes(alphabet=256),
                                      LogisticRegression(max_iter=300))}  # fmt: skip
    one_hot = run_benchmark(X, y, codes, train_sizes=[200], n_repeats=1, test_size=300)
    assert one_hot.model_flops_per_sample.iloc[0] == 2 * 49 * 10  # a lookup: 49 active inputs, 10 classes
    from sklearn import config_context
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import OneHotEncoder

    svd = {"svd": make_pipeline(ResolutionReducer(16, quantize=True), OneHotEncoder(handle_unknown="ignore"),
                                TruncatedSVD(4, random_state=0), LogisticRegression(max_iter=300))}  # fmt: skip
    import contextlib
    import inspect

    arrays = "sparse_interface" in inspect.signature(config_context).parameters  # scikit-learn >= 1.8
    with config_context(sparse_interface="sparray") if arrays else contextlib.nullcontext():
        table = run_benchmark(X, y, svd, train_sizes=[200], n_repeats=1, test_size=300)  # sparse arrays crashed it

    flops = table.model_flops_per_sample.iloc[0]  # 2 x (mean one-hot entries a row, up to 49: unseen codes light
    assert 2 * 4 * 10 < flops <= 2 * 49 * 4 + 2 * 4 * 10  # none) x 4 components, + 2 x 4 x 10 for the classifier


def test_sparse_training_rows_are_priced_by_their_own_non_zeros_not_the_test_rows(digits):
    """One-hot of codes the training set never showed lights no column in a test row ("seen" columns): the forward
    count reads test rows, but every training row lights all 49 of its codes, and training is priced by them."""
    X, y = digits
    sparse = make_pipeline(ResolutionReducer(16, quantize=True),
                           OneHotCodes(alphabet=256, handle_unknown="ignore", columns="seen"),
                           LogisticRegression(max_iter=2))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        row = run_benchmark(X, y, {"one-hot": sparse}, train_sizes=[20], n_repeats=1, test_size=300).iloc[0]
    assert row.model_flops_per_sample < 2 * 49 * 10  # test rows: unseen codes light nothing
    assert row.training_flops == 3 * (2 * 49 * 10) * 20 * 2  # 20 rows of 49 active inputs, 2 lbfgs iterations


def test_raw_integer_samples_passed_through_count_their_stored_bits_as_through_raw_signal(digits):
    X, y = digits
    pipelines = {"raw": linear(RawSignal(input_shape=(1, 28, 28))),
                 "passthrough": Pipeline([("features", "passthrough"), ("clf", LogisticRegression(max_iter=50))])}
    flat = X.reshape(len(X), -1)  # uint8 rows, which both read as they are
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        table = run_benchmark(flat, y, pipelines, train_sizes=[100], n_repeats=1, test_size=300)
        floats = run_benchmark(flat / 255.0, y, {"passthrough": pipelines["passthrough"]}, train_sizes=[100],
                               n_repeats=1, test_size=300)  # fmt: skip
    assert table.set_index("pipeline").bits_per_sample.to_dict() == {"raw": 8.0, "passthrough": 8.0}
    assert np.isnan(floats.bits_per_sample.iloc[0])  # continuous samples have no rate


def test_jpeg_files_benchmark_as_paths_or_bytes_as_jpeg_coefficients_reads_them(digits, tmp_path):
    """JPEGCoefficients reads files, not pixels: run_benchmark takes a list or 1-D array of paths or of bytes."""
    pytest.importorskip("jpeglib")
    import io

    from PIL import Image

    from walloc_features.features import JPEGCoefficients

    X, y = digits[0][:300], digits[1][:300]
    blobs = []
    for image in X:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        blobs.append(buffer.getvalue())
    paths = [tmp_path / f"{i}.jpg" for i in range(len(X))]
    for path, blob in zip(paths, blobs, strict=True):
        path.write_bytes(blob)
    pipeline = {"jpeg": linear(JPEGCoefficients(reduction=16))}
    longest = max(map(len, blobs))  # bytes after the end-of-image marker are ignored; one length for all, which
    padded = [b + bytes(longest - len(b)) for b in blobs]  # np.array would unpack into rows of ints
    as_bytes = (blobs, np.array(blobs), [bytearray(b) for b in padded], [memoryview(b) for b in padded])
    for files in (paths, np.array([str(p) for p in paths]), *as_bytes):
        row = run_benchmark(files, y, pipeline, train_sizes=[200], n_repeats=1, test_size=100).iloc[0]
        assert row.accuracy > 0.6 and row.feature_dim == 16 * 4  # chance: 0.1; 16 blocks (32x32) of 4 coefficients
        assert row.bits_per_sample == 11 / row.reduction == 11 / (784 / 64)
    with pytest.raises(ValueError, match="samples along its first axis .* 1-D array of file paths or bytes"):
        run_benchmark(np.arange(300.0), y, pipeline, train_sizes=[200], n_repeats=1, test_size=100)
    cached = dict(train_sizes=[200], n_repeats=1, test_size=100, memory=tmp_path / "cache")
    assert run_benchmark([memoryview(b) for b in blobs], y, pipeline, **cached).accuracy.iloc[0] > 0.6  # pickled
    assert run_benchmark(paths, y, pipeline, **cached).accuracy.iloc[0] > 0.6
    grey = blobs[0]  # every file rewritten under its name as the same digit: the cached features are stale
    for path in paths:
        path.write_bytes(grey)
    assert run_benchmark(paths, y, pipeline, **cached).accuracy.iloc[0] < 0.3


def test_decompositions_that_solve_per_sample_have_unknown_flops(digits):
    """NMF has components_ but transforms by an iterative solver per sample: counted as a projection, it looked
    as cheap as a PCA of the same size. Unknown (NaN) instead, for the forward pass and training alike."""
    from sklearn.decomposition import NMF

    X, y = digits
    nmf = NMF(10, max_iter=50, random_state=0)
    pipelines = {"nmf": make_pipeline(RawSignal(), nmf, LogisticRegression(max_iter=300))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        table = run_benchmark(X, y, pipelines, train_sizes=[200], n_repeats=1, test_size=300)
    assert table.model_flops_per_sample.isna().all() and table.training_flops.isna().all()
    assert table.accuracy.iloc[0] > 0.3  # the cell itself ran (chance: 0.1)


def test_parallel_cells_give_the_same_scores(digits):
    X, y = digits
    pipelines = {"resize": linear(ResolutionReducer(16))}
    serial = run_benchmark(X, y, pipelines, train_sizes=[100, 300], n_repeats=2, test_size=300)
    parallel = run_benchmark(X, y, pipelines, train_sizes=[100, 300], n_repeats=2, test_size=300, n_jobs=2)
    np.testing.assert_array_equal(serial.accuracy, parallel.accuracy)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"train_sizes": [5000]}, ValueError, "fit in the pool"),
        ({"train_sizes": [2.5]}, ValueError, r"\(0, 1\]"),
        ({"train_sizes": [5]}, ValueError, "every class"),
        ({"n_repeats": 0}, ValueError, "n_repeats"),
        ({"pipelines": {"bare": LogisticRegression()}}, TypeError, "Pipeline of a feature transformer"),
        ({"pipelines": {}}, TypeError, "non-empty"),
    ],
)
def test_bad_grids_are_refused_with_the_reason(digits, kwargs, error, match):
    X, y = digits
    args = {"pipelines": {"raw": linear(RawSignal())}, "train_sizes": [100], "test_size": 300, **kwargs}
    pipelines = args.pop("pipelines")
    with pytest.raises(error, match=match):
        run_benchmark(X, y, pipelines, **args)


def test_passthrough_pipelines_take_the_input_as_is(digits):
    X, y = digits
    flat = X.reshape(len(X), -1).astype(np.float32) / 255
    pipeline = Pipeline([("features", "passthrough"), ("clf", LogisticRegression(max_iter=300))])
    table = run_benchmark(flat, y, {"pixels": pipeline}, train_sizes=[300], n_repeats=1, test_size=300)
    row = table.iloc[0]
    assert row.features == "raw" and row.feature_dim == 784 and row.encode_flops_per_sample == 0


def test_a_fractional_train_size_rounds_half_up(digits):
    """A quarter of a pool of 42 is 10.5 samples: 11 are trained on (truncating gave 10)."""
    X, y = digits
    pipeline = make_pipeline(RawSignal(), LogisticRegression(max_iter=50))
    table = run_benchmark(X[:52], y[:52] % 2, {"raw": pipeline}, train_sizes=[0.25], n_repeats=1, test_size=10)
    assert table.attrs["n_pool"] == 42 and table.train_size.tolist() == [11]


def test_the_refit_of_a_cross_validated_model_costs_its_average_fold():
    """Folds that stopped after 2, 4 and 6 iterations of one setting: each ran on 2/3 of the data, and the refit
    on all of it is priced at their mean, 4 passes (not the slowest fold's 6)."""
    from types import SimpleNamespace

    from walloc_features.evaluation.benchmark import _epochs

    y = np.arange(30) % 2
    search = SimpleNamespace(n_iter_=np.array([[[2]], [[4]], [[6]]]), cv=3, refit=True)
    assert _epochs(search, y) == pytest.approx(2 / 3 * (2 + 4 + 6) + 4)
    assert _epochs(SimpleNamespace(**{**vars(search), "refit": False}), y) == pytest.approx(2 / 3 * 12)


def test_a_file_rewritten_with_as_many_bytes_gets_another_cache_key(tmp_path):
    """JPEG files rewritten under their names with the same length (another image at the same size) are new input:
    the cache key holds each file's modification time beside its size."""
    import os

    from walloc_features.evaluation.benchmark import _input_files

    path = tmp_path / "0.jpg"
    path.write_bytes(b"first image")
    files = np.array([str(path)])
    before = _input_files(files)
    path.write_bytes(b"other image")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a second later, coarse clocks too
    assert _input_files(files) != before and _input_files(files) == _input_files(files)


def test_each_repeat_trains_on_its_own_subset(digits):
    """Repeats below the whole pool draw other training subsets (their spread is sampling error); the whole pool
    is one subset, so its repeats see the same samples."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    seen = []

    class Recording(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            seen.append((len(X), hash(np.sort(X, axis=0).tobytes())))
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

    X, y = digits
    run_benchmark(X, y, {"record": make_pipeline(RawSignal(), Recording())}, train_sizes=[100, 1.0], n_repeats=3,
                  test_size=300)  # fmt: skip
    small = {digest for n, digest in seen if n == 100}
    whole = {digest for n, digest in seen if n == 600}
    assert len(seen) == 6 and len(small) == 3 and len(whole) == 1
