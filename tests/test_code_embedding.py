"""CodeEmbeddingClassifier: a learned vector per code, then an MLP, conv or timm head."""

import pickle

import numpy as np
import pytest
import torch

from walloc_features import ResidualVQ
from walloc_features.estimators import CodeEmbeddingClassifier
from walloc_features.estimators.embedding import CodeEmbedding

FAST = {"max_epochs": 2, "batch_size": 64, "random_state": 0}


@pytest.fixture(scope="module")
def rvq_codes(mnist):
    """ResidualVQ 16x codebook indices (N, 1, 7, 7) of 3,000 training and 1,000 test digits."""
    X, y = mnist
    rvq = ResidualVQ(reduction=16, output="tensor", random_state=0).fit(X[:3000])
    return rvq.transform(X[:3000]), y[:3000], rvq.transform(X[-1000:]), y[-1000:], rvq


@pytest.fixture
def frame_codes():
    """EnCodec-like codes (N, 4 codebooks, 8 frames) in [0, 16); the label is codebook 0's first code mod 3."""
    codes = np.random.default_rng(0).integers(0, 16, size=(1000, 4, 8))
    return codes, codes[:, 0, 0] % 3


def test_embedding_mlp_learns_mnist_from_codebook_indices(rvq_codes):
    codes, y, test, y_test, rvq = rvq_codes
    model = CodeEmbeddingClassifier(alphabet=rvq.code_range_, max_epochs=10, random_state=0).fit(codes, y)
    assert model.score(test, y_test) >= 0.88
    # the head's cost only: 49 codes x 8 dims -> 256 -> 10, a lookup is not arithmetic
    assert model.flops_per_sample_ == 2 * (49 * 8 * 256 + 256 * 10)
    assert model.n_parameters_ == 256 * 8 + (392 * 256 + 256) + (256 * 10 + 10)


@pytest.mark.parametrize("head", ["mlp", "conv", "test_resnet"])
def test_every_head_trains_on_one_dimensional_codebook_frames(head, frame_codes):
    """The MLP sees positions, so it learns codebook 0's first code; the pooled heads cannot see where a code
    lies (they scored chance on that label), so they learn a count instead: whether codebook 0 holds at least 3
    multiples of 3 (majority class 0.66)."""
    codes, y = frame_codes
    if head != "mlp":
        y = ((codes[:, 0] % 3 == 0).sum(axis=1) >= 3).astype(int)
    epochs = {"mlp": 25, "conv": 10, "test_resnet": 3}[head]
    model = CodeEmbeddingClassifier(head, embedding_dim=4, max_epochs=epochs, lr=5e-3, random_state=0)
    model.fit(codes[:800], y[:800])
    proba = model.predict_proba(codes[800:])
    assert proba.shape == (200, len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    if head == "mlp":
        assert model.score(codes[800:], y[800:]) >= 0.95  # a symbol -> class table, learned exactly
    if head == "conv":
        assert model.score(codes[800:], y[800:]) >= 0.85  # measured 0.93
    if head == "test_resnet":
        assert model.stem_changes_  # downsampling removed for the 1 x 8 frames
        losses = model.net_.history[:, "train_loss"]
        assert losses[-1] < 0.95 * losses[0]  # it trains (its accuracy stays at the majority class in 3 epochs)


def test_each_channel_looks_its_codes_up_in_its_own_table():
    """The same code in two channels is two symbols (codebooks of a residual VQ mean different things), one
    symbol again with ``shared=True``; codes are offset by the alphabet's low end."""
    torch.manual_seed(0)
    x = torch.tensor([[[[0]], [[0]]]])  # code 0 in both channels, of the alphabet [-3, 12]
    own = CodeEmbedding(2, (-3, 12), 4)
    vectors = own(x).reshape(2, 4)  # (N, C * dim, H, W): channel c's vector is entries c * dim ...
    torch.testing.assert_close(vectors[0], own.table.weight[3])
    torch.testing.assert_close(vectors[1], own.table.weight[16 + 3])
    shared = CodeEmbedding(2, (-3, 12), 4, shared=True)
    vectors = shared(x).reshape(2, 4)
    torch.testing.assert_close(vectors[0], shared.table.weight[3])
    torch.testing.assert_close(vectors[1], shared.table.weight[3])


def test_each_channel_has_its_own_table_unless_shared(frame_codes):
    codes, y = frame_codes
    own = CodeEmbeddingClassifier(embedding_dim=4, alphabet=16, **FAST).fit(codes, y)
    shared = CodeEmbeddingClassifier(embedding_dim=4, alphabet=16, shared_embedding=True, **FAST).fit(codes, y)
    assert own.net_.module_[0].table.weight.shape == (4 * 16, 4)
    assert shared.net_.module_[0].table.weight.shape == (16, 4)
    assert own.n_parameters_ - shared.n_parameters_ == 3 * 16 * 4


def test_flat_codes_give_every_position_its_own_table(frame_codes):
    codes, y = frame_codes
    flat = codes[:, 0, :6]  # (N, 6)
    model = CodeEmbeddingClassifier(embedding_dim=2, **FAST).fit(flat, y)
    assert model.net_.module_[0].table.weight.shape == (6 * 16, 2)
    assert model.predict(flat[:5]).shape == (5,)
    with pytest.raises(ValueError, match=r"^X has 5 features, but CodeEmbeddingClassifier is expecting 6 features as"):
        model.predict(flat[:5, :5])  # scikit-learn's wording for rows of another width


def test_ordinal_init_starts_each_table_on_an_ordered_line():
    torch.manual_seed(0)
    embedding = CodeEmbedding(2, (-3, 3), 5, init="ordinal")
    table = embedding.table.weight.detach().reshape(2, 7, 5)
    for rows in table:
        assert torch.linalg.matrix_rank(rows) == 1
        along = rows @ rows[-1]  # position along the line, towards the largest code
        assert torch.all(along[1:] > along[:-1])
    normal = CodeEmbedding(2, (-3, 3), 5).table.weight
    assert 0.005 < normal.std() < 0.05  # small random vectors for categorical codes


def test_codes_outside_the_alphabet_error_or_clip_at_predict(frame_codes):
    codes, y = frame_codes
    model = CodeEmbeddingClassifier(alphabet=16, **FAST).fit(codes, y)
    high = codes[:3].copy()
    high[:, 1, 2] = 40
    with pytest.raises(ValueError, match="outside the fitted alphabet"):
        model.predict(high)
    model.set_params(handle_unknown="clip")
    clipped = high.copy()
    clipped[:, 1, 2] = 15
    np.testing.assert_array_equal(model.predict_proba(high), model.predict_proba(clipped))


def test_bad_codes_and_tables_are_refused(frame_codes):
    codes, y = frame_codes
    with pytest.raises(ValueError, match="integer codes"):
        CodeEmbeddingClassifier(**FAST).fit(codes + 0.25, y)
    with pytest.raises(ValueError, match="outside alphabet"):
        CodeEmbeddingClassifier(alphabet=8, **FAST).fit(codes, y)
    with pytest.raises(ValueError, match="too large"):
        CodeEmbeddingClassifier(alphabet=2**21, **FAST).fit(codes, y)  # 4 tables of 2**21 rows
    with pytest.raises(ValueError, match=r"alphabet \(0, 1073741824\) \(from alphabet=\(0, 1073741824\)\) reaches"):
        CodeEmbeddingClassifier(alphabet=(0, 2**30), **FAST).fit(codes, y)  # the codes are small, the alphabet not
    with pytest.raises(ValueError, match=r"learned from the codes\) reaches beyond"):
        CodeEmbeddingClassifier(shared_embedding=True, **FAST).fit(codes * 2**22, y)


@pytest.mark.parametrize("head", ["mlp", "conv"])
def test_either_head_refuses_codes_on_another_grid(frame_codes, head):
    codes, y = frame_codes
    model = CodeEmbeddingClassifier(head=head, **FAST).fit(codes, y)
    with pytest.raises(ValueError, match=r"samples of shape \(4, 6\), but CodeEmbeddingClassifier was fitted on"):
        model.predict(codes[:, :, :6])


def test_head_options_are_checked_per_head(frame_codes):
    codes, y = frame_codes
    with pytest.raises(ValueError, match=r"\['widht'\] are not options of head='conv'"):
        CodeEmbeddingClassifier("conv", head_kwargs={"widht": 8}, **FAST).fit(codes, y)
    with pytest.raises(ValueError, match="max_epochs"):
        CodeEmbeddingClassifier("test_resnet", head_kwargs={"max_epochs": 9}, **FAST).fit(codes, y)
    with pytest.raises(ValueError, match="stem"):
        CodeEmbeddingClassifier("test_resnet", head_kwargs={"stem": "bogus"}, **FAST).fit(codes, y)


def test_dataframe_column_names_are_recorded_and_checked_like_scikit_learn(frame_codes):
    pd = pytest.importorskip("pandas")
    codes, y = frame_codes
    frame = pd.DataFrame(codes[:, 0], columns=[f"frame{t}" for t in range(8)])
    model = CodeEmbeddingClassifier(**FAST).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(model.predict(codes[:20, 0]), model.predict(frame[:20]))
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(frame.rename(columns={"frame0": "first"}))


def test_fitted_classifier_pickles_with_identical_predictions(frame_codes):
    codes, y = frame_codes
    model = CodeEmbeddingClassifier("conv", head_kwargs={"width": 8}, **FAST).fit(codes, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(codes[:20]), model.predict_proba(codes[:20]))


def test_a_mistyped_head_names_the_parameter_and_its_built_in_choices():
    codes, y = np.random.default_rng(0).integers(0, 4, (20, 1, 4, 4)), np.arange(20) % 2
    with pytest.raises(ValueError, match="head='mpl' is neither 'mlp', 'conv' nor a timm model name"):
        CodeEmbeddingClassifier(head="mpl", max_epochs=1).fit(codes, y)
