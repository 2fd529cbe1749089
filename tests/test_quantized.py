"""Quantized-input strategies: what each turns integer codes into, and that it can be undone."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction import FeatureHasher

from walloc_features import WaLLoCTransformer
from walloc_features.quantized import BitPlanes, Dequantize, HashedCodes, OneHotCodes, PackedCodes

ALL = [Dequantize, OneHotCodes, BitPlanes, PackedCodes, HashedCodes]


@pytest.fixture(scope="module")
def walloc_codes(mnist):
    """WaLLoC 16x codes of 3,000 digits, channel-first (N, 1, 7, 7) int8, and the fitted codec."""
    X, _ = mnist
    codec = WaLLoCTransformer(reduction=16, quantize=True, output="tensor").fit(X[:3000])
    return codec.transform(X[:3000]), codec


def _nbytes(Z) -> int:
    """Memory of a transform's output: a dense array's, or a sparse matrix's data and index arrays."""
    return Z.data.nbytes + Z.indices.nbytes + Z.indptr.nbytes if sp.issparse(Z) else Z.nbytes


@pytest.fixture
def signed_codes():
    """Signed 3-channel codes (N, C, H, W) spanning [-5, 6]."""
    return np.random.default_rng(0).integers(-5, 7, size=(40, 3, 4, 5)).astype(np.int16)


# ------------------------------------------------------------------------------ shared rules --
@pytest.mark.parametrize("cls", ALL)
def test_unfitted_strategy_refuses_to_transform(cls, signed_codes):
    with pytest.raises(NotFittedError):
        cls().transform(signed_codes)


@pytest.mark.parametrize("cls", ALL)
def test_fractional_codes_are_refused_not_rounded(cls, signed_codes):
    with pytest.raises(ValueError, match="integer codes"):
        cls().fit(signed_codes + 0.5)


@pytest.mark.parametrize("cls", ALL)
def test_whole_valued_float_codes_are_read_as_integers(cls, signed_codes):
    as_float = cls().fit_transform(signed_codes.astype(np.float32))
    as_int = cls().fit_transform(signed_codes)
    if sp.issparse(as_int):
        as_float, as_int = as_float.toarray(), as_int.toarray()
    np.testing.assert_array_equal(as_float, as_int)


@pytest.mark.parametrize("cls", ALL)
def test_samples_of_another_shape_are_refused(cls, signed_codes):
    strategy = cls().fit(signed_codes)
    # (the package's words: numpy's broadcasting error names "shapes" too, and Dequantize once raised it)
    with pytest.raises(ValueError, match=r"samples of shape \(2, 4, 5\).*fitted on \(3, 4, 5\)"):
        strategy.transform(signed_codes[:, :2])


@pytest.mark.parametrize("cls", ALL)
def test_strategies_clone_and_pickle_with_identical_output(cls, signed_codes):
    strategy = cls().fit(signed_codes)
    restored = pickle.loads(pickle.dumps(strategy))
    a, b = strategy.transform(signed_codes), restored.transform(signed_codes)
    if sp.issparse(a):
        a, b = a.toarray(), b.toarray()
    np.testing.assert_array_equal(a, b)
    twin = clone(strategy)  # unfitted, and refits to the same output
    with pytest.raises(NotFittedError):
        twin.transform(signed_codes)
    again = twin.fit(signed_codes).transform(signed_codes)
    np.testing.assert_array_equal(again.toarray() if sp.issparse(again) else again, a)
    assert strategy.n_features_in_ == 3 * 4 * 5


@pytest.mark.parametrize("cls", [OneHotCodes, BitPlanes, PackedCodes, HashedCodes, Dequantize])
def test_feature_names_match_the_flat_output(cls, signed_codes):
    strategy = cls().fit(signed_codes)
    assert len(strategy.get_feature_names_out()) == strategy.transform(signed_codes).shape[1]


# -------------------------------------------------------------------------------- Dequantize --
def test_dequantize_scales_by_the_step_and_inverts_exactly(signed_codes):
    step = np.array([0.5, 2.0, 8.0]).reshape(3, 1, 1)  # per channel
    deq = Dequantize(step=step, output="tensor").fit(signed_codes)
    values = deq.transform(signed_codes)
    assert values.dtype == np.float32 and values.shape == signed_codes.shape
    np.testing.assert_array_equal(values, (signed_codes * step).astype(np.float32))  # each channel its own step
    back = deq.inverse_transform(values)
    assert back.dtype == signed_codes.dtype
    np.testing.assert_array_equal(back, signed_codes)


def test_dequantize_flat_output_and_its_inverse(signed_codes):
    deq = Dequantize(step=0.25).fit(signed_codes)
    flat = deq.transform(signed_codes)
    np.testing.assert_array_equal(flat, signed_codes.reshape(40, 60) * np.float32(0.25))
    np.testing.assert_array_equal(deq.inverse_transform(flat), signed_codes)


def test_dequantize_refuses_a_step_of_the_wrong_shape_and_stays_unfitted(signed_codes):
    deq = Dequantize(step=np.ones(4))
    with pytest.raises(ValueError, match="does not broadcast"):
        deq.fit(signed_codes)
    with pytest.raises(NotFittedError):
        deq.transform(signed_codes)
    with pytest.raises(ValueError, match="positive"):
        Dequantize(step=0.0).fit(signed_codes)


def test_dequantize_supports_pandas_output(signed_codes):
    frame = Dequantize().set_output(transform="pandas").fit_transform(signed_codes.reshape(40, -1))
    assert list(frame.columns[:2]) == ["x0", "x1"] and frame.shape == (40, 60)


# ------------------------------------------------------------------------------- OneHotCodes --
def test_one_hot_lights_position_times_alphabet_plus_offset(signed_codes):
    onehot = OneHotCodes().fit(signed_codes)
    assert onehot.alphabet_ == (-5, 6) and onehot.alphabet_size_ == 12
    rows = onehot.transform(signed_codes)
    assert sp.issparse(rows) and rows.shape == (40, 60 * 12) and rows.nnz == 40 * 60
    flat = signed_codes.reshape(40, -1)
    lit = rows[7].indices
    np.testing.assert_array_equal(np.sort(lit), np.arange(60) * 12 + (flat[7] + 5))


@pytest.mark.parametrize("output", ["sparse", "dense", "tensor"])
def test_one_hot_round_trips(output, signed_codes):
    onehot = OneHotCodes(output=output).fit(signed_codes)
    encoded = onehot.transform(signed_codes)
    assert sp.issparse(encoded) == (output == "sparse")
    np.testing.assert_array_equal(onehot.inverse_transform(encoded), signed_codes)


def test_one_hot_tensor_is_channel_first_with_alphabet_planes_per_channel(signed_codes):
    tensor = OneHotCodes(output="tensor").fit_transform(signed_codes)
    assert tensor.shape == (40, 3 * 12, 4, 5) and tensor.dtype == np.float32
    n, c, i, j = 3, 2, 1, 4
    expected_plane = c * 12 + (signed_codes[n, c, i, j] + 5)
    assert tensor[n, expected_plane, i, j] == 1 and tensor[n, c * 12 : (c + 1) * 12, i, j].sum() == 1


def test_one_hot_unknown_codes_error_ignore_or_clip(signed_codes):
    test = signed_codes.copy()
    test[0, 0, 0, 0] = 50
    with pytest.raises(ValueError, match="outside the fitted alphabet"):
        OneHotCodes().fit(signed_codes).transform(test)
    ignored = OneHotCodes(handle_unknown="ignore").fit(signed_codes).transform(test)
    assert ignored.nnz == 40 * 60 - 1 and ignored[0, :12].nnz == 0  # the unknown code lights nothing
    clipped = OneHotCodes(handle_unknown="clip").fit(signed_codes).transform(test)
    assert clipped[0, 11] == 1  # clipped to the highest code, 6


def test_one_hot_seen_columns_keep_only_what_fit_saw_and_round_trip(signed_codes):
    full = OneHotCodes(alphabet=(-100, 100)).fit(signed_codes)
    seen = OneHotCodes(alphabet=(-100, 100), columns="seen").fit(signed_codes)
    all_rows, seen_rows = full.transform(signed_codes), seen.transform(signed_codes)
    assert seen_rows.shape[1] == len(np.unique(all_rows.indices)) < all_rows.shape[1]
    np.testing.assert_array_equal(seen_rows.toarray(), all_rows[:, seen.seen_columns_].toarray())
    np.testing.assert_array_equal(seen.inverse_transform(seen_rows), signed_codes)
    assert len(seen.get_feature_names_out()) == seen_rows.shape[1]


def test_one_hot_memory_is_bounded_by_non_zeros_not_alphabet(traced_peak):
    codes = np.random.default_rng(1).integers(0, 2**16, size=(2000, 49))
    onehot = OneHotCodes(alphabet=2**16).fit(codes)  # 3.2 million columns: 25 GB if dense
    rows, peak = traced_peak(onehot.transform, codes)
    assert rows.shape == (2000, 49 * 2**16) and rows.nnz == 2000 * 49
    assert peak < 40 * rows.nnz  # a few arrays of nnz entries, nothing of size N x alphabet


@pytest.mark.parametrize("cls", [OneHotCodes, PackedCodes])
def test_seen_columns_drop_codes_fit_did_not_see_whatever_the_chunk(cls, signed_codes, monkeypatch):
    """Codes unseen in fit light no column; renumbered a chunk of entries at a time, the rows equal the full
    one-hot's seen columns for any chunk size."""
    import walloc_features.quantized.onehot as onehot_module

    full = cls(alphabet=(-5, 6), columns="all").fit(signed_codes)
    seen = cls(alphabet=(-5, 6), columns="seen").fit(signed_codes[:3])
    every = full.transform(signed_codes)
    for chunk in (7, 2**16):
        monkeypatch.setattr(onehot_module, "_SELECT_CHUNK", chunk)
        rows = seen.transform(signed_codes)
        np.testing.assert_array_equal(rows.toarray(), every[:, seen.seen_columns_].toarray())
    assert 0 < rows.nnz < every.nnz  # some codes were seen, some not


@pytest.mark.parametrize(
    "strategy",
    [OneHotCodes(), OneHotCodes(columns="seen"), BitPlanes(), BitPlanes(output="tensor", signed=True),
     PackedCodes(), PackedCodes(columns="all"), PackedCodes(axis=-1, output="codes")],
    ids=repr,
)  # fmt: skip
def test_quantized_transform_holds_little_beyond_its_output(strategy, traced_peak):
    """Peak traced memory of a transform: its output 1.5 times plus two copies of the input codes. 64-bit
    intermediates held 3.1x (one-hot), 4.6x (its seen columns), 3.5x (bit planes) and 5.2x (packed pairs) the
    output, 20x the input for packed symbols."""
    codes = np.random.default_rng(0).integers(-8, 8, (2000, 12, 8, 8)).astype(np.int8)  # 4-bit WaLLoC-like codes
    strategy.fit(codes)
    strategy.transform(codes[:10])  # warm-up: first-call allocations are not the transform's
    Z, peak = traced_peak(strategy.transform, codes)
    assert peak < 1.5 * _nbytes(Z) + 2 * codes.nbytes, (peak, _nbytes(Z), codes.nbytes)


def test_one_hot_given_alphabet_must_contain_the_fit_codes(signed_codes):
    with pytest.raises(ValueError, match="outside alphabet"):
        OneHotCodes(alphabet=(0, 10)).fit(signed_codes)
    with pytest.raises(ValueError, match="low <= high"):
        OneHotCodes(alphabet=(3, 1)).fit(signed_codes)


# --------------------------------------------------------------------------------- BitPlanes --
def test_bit_planes_are_the_offset_code_in_binary_most_significant_first():
    codes = np.array([[-8, 0, 7]])  # alphabet [-8, 7]: 16 symbols, 4 bits; offsets 0, 8, 15
    planes = BitPlanes().fit(codes)
    assert planes.bits_ == 4
    np.testing.assert_array_equal(planes.transform(codes), [[0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]])
    signed = BitPlanes(signed=True).fit(codes).transform(codes)
    np.testing.assert_array_equal(signed, 2 * planes.transform(codes) - 1)
    assert list(planes.get_feature_names_out()[:4]) == ["x0_b3", "x0_b2", "x0_b1", "x0_b0"]


@pytest.mark.parametrize("output", ["flat", "tensor"])
@pytest.mark.parametrize("signed", [False, True])
def test_bit_planes_round_trip(output, signed, walloc_codes):
    codes, codec = walloc_codes
    planes = BitPlanes(alphabet=codec.code_range_, output=output, signed=signed).fit(codes)
    encoded = planes.transform(codes)
    assert planes.bits_ == 8  # 255 symbols of 8-bit WaLLoC codes
    assert encoded.shape == ((3000, 49 * 8) if output == "flat" else (3000, 8, 7, 7))
    assert set(np.unique(encoded)) <= ({-1.0, 1.0} if signed else {0.0, 1.0})
    np.testing.assert_array_equal(planes.inverse_transform(encoded), codes)


def test_bit_planes_tensor_holds_the_bits_of_each_channel_together(signed_codes):
    flat = BitPlanes(output="flat").fit_transform(signed_codes)
    tensor = BitPlanes(output="tensor").fit_transform(signed_codes)
    bits = 4  # 12 symbols
    assert tensor.shape == (40, 3 * bits, 4, 5)
    # channel 2, pixel (1, 3): flat position p = (2 * 4 + 1) * 5 + 3
    p = (2 * 4 + 1) * 5 + 3
    np.testing.assert_array_equal(tensor[:, 2 * bits : 3 * bits, 1, 3], flat[:, p * bits : (p + 1) * bits])


def test_bit_planes_clip_unknown_codes_when_asked(signed_codes):
    planes = BitPlanes(handle_unknown="clip").fit(signed_codes)
    high = planes.transform(np.full((1, 3, 4, 5), 99))
    np.testing.assert_array_equal(planes.inverse_transform(high), np.full((1, 3, 4, 5), 6))
    with pytest.raises(ValueError, match="outside the fitted alphabet"):
        BitPlanes().fit(signed_codes).transform(np.full((1, 3, 4, 5), 99))


# ------------------------------------------------------------------------------- PackedCodes --
def test_packing_follows_the_shift_formula():
    codes = np.array([[3, 1, 2, 0, 1, 3]])  # 2-bit codes
    packed = PackedCodes(3, alphabet=4, output="codes").fit(codes)
    assert packed.bits_ == 2 and packed.packed_alphabet_size_ == 64
    np.testing.assert_array_equal(packed.transform(codes), [[3 + (1 << 2) + (2 << 4), 0 + (1 << 2) + (3 << 4)]])


@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("output", ["codes", "sparse", "dense"])
def test_packed_codes_round_trip_with_padding(axis, output, signed_codes):
    # 3 channels, 4 rows, 5 columns: groups of 2 pad channels and columns
    packed = PackedCodes(2, axis=axis, output=output).fit(signed_codes)
    encoded = packed.transform(signed_codes)
    lengths = {1: 3, 2: 4, -1: 5}
    assert packed.packed_shape_[axis - 1 if axis > 0 else axis] == -(-lengths[axis] // 2)
    if output == "sparse":
        assert sp.issparse(encoded) and encoded.nnz == 40 * int(np.prod(packed.packed_shape_))
    np.testing.assert_array_equal(packed.inverse_transform(encoded), signed_codes)


def test_packed_groups_neighbouring_positions_of_walloc_codes(walloc_codes):
    codes, codec = walloc_codes
    packed = PackedCodes(2, axis=-1, alphabet=codec.code_range_, output="codes").fit(codes)
    symbols = packed.transform(codes)
    assert symbols.shape == (3000, 1, 7, 4)
    offsets = codes.astype(np.int64) + 127
    np.testing.assert_array_equal(symbols[:, 0, :, 0], offsets[:, 0, :, 0] + (offsets[:, 0, :, 1] << 8))
    np.testing.assert_array_equal(symbols[:, 0, :, 3], offsets[:, 0, :, 6])  # padded with offset 0


def test_packed_alphabet_too_large_to_one_hot_is_refused_clearly(walloc_codes):
    codes, codec = walloc_codes
    packed = PackedCodes(3, alphabet=codec.code_range_)
    with pytest.raises(ValueError, match=r"2\*\*24 symbols, more than max_alphabet=65536"):
        packed.fit(codes)
    with pytest.raises(NotFittedError):  # the failed fit left nothing behind
        packed.transform(codes)
    with pytest.raises(ValueError, match="not a sample axis"):
        PackedCodes(2, axis=0).fit(codes)


def test_packed_seen_columns_match_the_full_one_hot(signed_codes):
    full = PackedCodes(2, columns="all").fit(signed_codes)
    seen = PackedCodes(2).fit(signed_codes)
    all_rows, seen_rows = full.transform(signed_codes), seen.transform(signed_codes)
    assert all_rows.shape[1] == int(np.prod(full.packed_shape_)) * 256
    np.testing.assert_array_equal(seen_rows.toarray(), all_rows[:, seen.seen_columns_].toarray())



@pytest.mark.parametrize(
    "fitted, change",
    [(OneHotCodes(), {"columns": "seen"}), (PackedCodes(2, columns="all"), {"columns": "seen"}),
     (PackedCodes(2, output="codes"), {"output": "sparse"})],
    ids=["one-hot all->seen", "packed all->seen", "packed codes->sparse"],
)
def test_seen_columns_set_after_fit_ask_for_a_new_fit(signed_codes, fitted, change):
    fitted.fit(signed_codes).set_params(**change)
    for call in (lambda: fitted.transform(signed_codes), fitted.get_feature_names_out,
                 lambda: fitted.inverse_transform(np.zeros((1, 3)))):
        with pytest.raises(NotFittedError, match='columns="seen" was set after a fit'):
            call()
    tensor = OneHotCodes(output="tensor").fit(signed_codes).set_params(columns="seen")  # no flat columns to select
    np.testing.assert_array_equal(tensor.inverse_transform(tensor.transform(signed_codes)), signed_codes)
    refitted = fitted.fit(signed_codes)  # the new fit records them
    assert refitted.transform(signed_codes).shape[1] == len(refitted.seen_columns_) == len(
        refitted.get_feature_names_out())


def test_packed_codes_keep_the_fitted_group_size_until_the_next_fit(signed_codes):
    """set_params(group_size=3) on a fitted PackedCodes mixed the new size with the fitted alphabet and columns:
    symbols truncated to the old dtype, six active columns a row became one or two, at the fitted width."""
    model = PackedCodes(2).fit(signed_codes)
    before = model.transform(signed_codes).toarray()
    model.set_params(group_size=3)
    np.testing.assert_array_equal(model.transform(signed_codes).toarray(), before)
    np.testing.assert_array_equal(model.inverse_transform(before), signed_codes)
    codes = PackedCodes(2, output="codes").fit(signed_codes).set_params(group_size=4).transform(signed_codes)
    np.testing.assert_array_equal(codes, PackedCodes(2, output="codes").fit(signed_codes).transform(signed_codes))
    older = pickle.loads(pickle.dumps(PackedCodes(2).fit(signed_codes)))
    del older.group_size_  # pickled by a version that did not record it: packs with its group_size
    np.testing.assert_array_equal(older.transform(signed_codes).toarray(), before)
    refitted = model.fit(signed_codes)
    assert refitted.group_size_ == 3 and refitted.packed_shape_ == PackedCodes(3).fit(signed_codes).packed_shape_


# ------------------------------------------------------------------------------- HashedCodes --
def test_hashing_is_one_signed_unit_per_code_and_deterministic(signed_codes):
    hashed = HashedCodes(n_features=2**12).fit(signed_codes)
    H = hashed.transform(signed_codes)
    assert sp.issparse(H) and H.shape == (40, 2**12)
    tokens = [[f"{p}={c}" for p, c in enumerate(row)] for row in signed_codes.reshape(40, -1)]
    np.testing.assert_array_equal(H.toarray(), FeatureHasher(2**12, input_type="string").transform(tokens).toarray())
    assert 0.95 * 40 * 60 < np.abs(H).sum() <= 40 * 60  # one unit per code, a few collisions among 4096 columns
    again = HashedCodes(n_features=2**12).fit(signed_codes[:5]).transform(signed_codes)
    np.testing.assert_array_equal(H.toarray(), again.toarray())  # no vocabulary: same columns anywhere


def test_hashing_matches_feature_hasher_on_position_code_tokens():
    codes = np.array([[5, -3], [70000, 5]])
    tokens = [["0=5", "1=-3"], ["0=70000", "1=5"]]
    expected = FeatureHasher(64, input_type="string").transform(tokens).toarray()
    np.testing.assert_array_equal(HashedCodes(64).fit(codes).transform(codes).toarray(), expected)


def test_hashing_memory_is_bounded_by_non_zeros(traced_peak):
    codes = np.random.default_rng(2).integers(-(2**30), 2**30, size=(1000, 49))
    H, peak = traced_peak(HashedCodes(n_features=2**20).fit(codes).transform, codes)
    assert H.shape == (1000, 2**20)
    assert peak < 400 * 1000 * 49  # token strings and sparse arrays, not N x n_features (4 GB dense)


def test_one_hot_tensor_holds_its_output_about_once_and_lights_nothing_for_unknown_codes(traced_peak):
    """64-bit offsets and masks of every code held 1.33x the output; now a chunk of samples at a time."""
    codes = np.random.default_rng(0).integers(-8, 8, (2000, 12, 8, 8)).astype(np.int8)
    onehot = OneHotCodes(output="tensor", handle_unknown="ignore").fit(codes)
    onehot.transform(codes[:10])  # warm-up
    T, peak = traced_peak(onehot.transform, codes)
    assert T.shape == (2000, 12 * 16, 8, 8) and peak < 1.15 * T.nbytes, (peak, T.nbytes)
    unknown = codes[:2].copy()
    unknown[0, 3, 2, 1] = 100
    blocks = onehot.transform(unknown).reshape(2, 12, 16, 8, 8).sum(axis=2)
    lit = np.ones_like(blocks)
    lit[0, 3, 2, 1] = 0
    np.testing.assert_array_equal(blocks, lit)  # one symbol lit a position, none for the unknown code


def test_hashing_holds_its_output_about_once(monkeypatch, traced_peak):
    """Chunks are written into one set of arrays, trimmed at the end: a list of chunks, then vstack, held the
    matrix twice (peak 1.66x the output of 3 million codes in chunks of 50,000); beyond the output, a transform
    holds one chunk's token strings."""
    import walloc_features.quantized.hashed as hashed_module

    monkeypatch.setattr(hashed_module, "_CHUNK_CODES", 10_000)  # token strings of a chunk: small beside the output
    codes = np.random.default_rng(0).integers(-8, 8, (1000, 12, 8, 8)).astype(np.int8)
    hashed = HashedCodes().fit(codes)
    hashed.transform(codes[:10])  # warm-up
    H, peak = traced_peak(hashed.transform, codes)
    assert H.nnz <= codes.size and peak < 1.45 * _nbytes(H), (peak, _nbytes(H))  # measured 1.33x (1.85x before)


def test_hashing_in_chunks_gives_the_same_matrix(signed_codes, monkeypatch):
    import walloc_features.quantized.hashed as hashed_module

    whole = HashedCodes(n_features=2**10).fit(signed_codes).transform(signed_codes)
    monkeypatch.setattr(hashed_module, "_CHUNK_CODES", 130)  # 2 samples of 60 codes per chunk
    chunked = HashedCodes(n_features=2**10).fit(signed_codes).transform(signed_codes)
    np.testing.assert_array_equal(chunked.toarray(), whole.toarray())


def test_packed_symbols_output_is_named_per_symbol_position(signed_codes):
    packed = PackedCodes(2, axis=-1, output="codes").fit(signed_codes)
    names = packed.get_feature_names_out()
    assert len(names) == int(np.prod(packed.packed_shape_)) == 3 * 4 * 3 and names[0] == "s0"


def test_codes_beyond_exact_arithmetic_are_refused():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        Dequantize().fit_transform(np.array([[2**25 + 1, 3]]))
    with pytest.raises(ValueError, match="too large"):
        BitPlanes().fit(np.array([[2**63, 2**63 + 1]], dtype=np.uint64))


def test_one_hot_layouts_beyond_64_bit_column_indices_are_refused():
    X = np.array([[0, 1, 2, 3], [1, 1, 1, 1]])
    with pytest.raises(ValueError, match="64-bit column indices"):  # 4 positions x 2**61 columns
        OneHotCodes(alphabet=2**61, columns="seen").fit(X)
    assert OneHotCodes(alphabet=2**60, columns="seen").fit(X).transform(X).shape == (2, 7)  # 2**62: fine


def test_packed_symbols_beyond_64_bit_integers_are_refused_not_truncated():
    codes = np.array([[1, 2**39 + 5], [3, 7]])  # 40-bit codes, 80-bit symbols
    with pytest.raises(ValueError, match="max_alphabet"):
        PackedCodes(alphabet=2**40, max_alphabet=2**100, output="codes").fit(codes)
    # the widest symbols accepted, 62 bits, are exact and round-trip
    codes = np.array([[1, 2**30 + 5], [3, 7]])
    packed = PackedCodes(alphabet=2**31, max_alphabet=2**62, output="codes").fit(codes)
    np.testing.assert_array_equal(packed.transform(codes), [[1 + ((2**30 + 5) << 31)], [3 + (7 << 31)]])
    np.testing.assert_array_equal(packed.inverse_transform(packed.transform(codes)), codes)
    sparse = PackedCodes(alphabet=2**31, max_alphabet=2**62, columns="all").fit(codes)
    np.testing.assert_array_equal(sparse.inverse_transform(sparse.transform(codes)), codes)
    with pytest.raises(ValueError, match="64-bit column indices"):  # 2 symbols x 2**62 one-hot columns
        PackedCodes(alphabet=2**31, max_alphabet=2**62).fit(np.hstack([codes, codes]))
    # nor when output switches to a one-hot after a fit with output="codes"
    symbols = PackedCodes(alphabet=2**31, max_alphabet=2**62, output="codes").fit(np.hstack([codes, codes]))
    with pytest.raises(ValueError, match="64-bit column indices"):
        symbols.set_params(output="sparse", columns="all").transform(np.hstack([codes, codes]))


def test_codes_boxed_as_objects_are_read_exactly_and_only_when_numbers():
    boxed = np.array([[2**53 + 1, 0], [3, 1.0]], dtype=object)  # 2**53 + 1 has no float64
    one_hot = OneHotCodes(columns="seen").fit(boxed)
    assert one_hot.alphabet_ == (0, 2**53 + 1)
    np.testing.assert_array_equal(one_hot.inverse_transform(one_hot.transform(boxed)), [[2**53 + 1, 0], [3, 1]])
    with pytest.raises(TypeError, match="str"):
        OneHotCodes().fit(np.array([["3", "4"]], dtype=object))
    with pytest.raises(ValueError, match="integer codes"):
        OneHotCodes().fit(np.array([[1, 0.5]], dtype=object))
    ints = np.array([[2**53 + 1, np.int64(0)], [3, True]], dtype=object)  # ints only: read in one cast
    exact = OneHotCodes().fit(ints)
    np.testing.assert_array_equal(exact.inverse_transform(exact.transform(ints)), [[2**53 + 1, 0], [3, 1]])
    for huge in (-(2**63), 2**62, 2**70):
        with pytest.raises(ValueError, match="too large for 64-bit"):
            OneHotCodes().fit(np.array([[huge, 0]], dtype=object))


NAMED_OUTPUTS = [
    (OneHotCodes(), ["a_0", "a_1", "a_2", "b_0", "b_1", "b_2"], ["x0_0", "x0_1", "x0_2", "x1_0", "x1_1", "x1_2"]),
    (BitPlanes(), ["a_b1", "a_b0", "b_b1", "b_b0"], ["x0_b1", "x0_b0", "x1_b1", "x1_b0"]),
    (PackedCodes(), ["a+b_2", "a+b_4", "a+b_5"], ["s0_2", "s0_4", "s0_5"]),  # symbols a + (b << 2)
    (PackedCodes(output="codes"), ["a+b"], ["s0"]),
    (Dequantize(), ["a", "b"], ["x0", "x1"]),
    (HashedCodes(4), ["hash0", "hash1", "hash2", "hash3"], ["hash0", "hash1", "hash2", "hash3"]),
]


@pytest.mark.parametrize(("strategy", "named", "unnamed"), NAMED_OUTPUTS, ids=lambda v: repr(v)[:40])
def test_dataframe_columns_name_the_output_and_are_checked_like_scikit_learn(strategy, named, unnamed):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [0, 1, 2], "b": [1, 1, 0]})
    fitted = clone(strategy).fit(frame)
    np.testing.assert_array_equal(fitted.feature_names_in_, ["a", "b"])
    assert list(fitted.get_feature_names_out()) == named
    assert list(fitted.get_feature_names_out(["a", "b"])) == named
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        fitted.get_feature_names_out(["b", "a"])
    with pytest.raises(ValueError, match="feature names should match"):
        fitted.transform(frame.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        fitted.transform(frame.to_numpy())
    # arrays carry no names: x0, x1, ... (s0, ... for packed symbols), or the names passed in
    on_array = clone(strategy).fit(frame.to_numpy())
    assert not hasattr(on_array, "feature_names_in_")
    assert list(on_array.get_feature_names_out()) == unnamed
    assert list(on_array.get_feature_names_out(["a", "b"])) == named
    with pytest.raises(ValueError, match="length equal to number of features"):
        on_array.get_feature_names_out(["a"])
    assert not hasattr(clone(strategy).fit(frame).fit(frame.to_numpy()), "feature_names_in_")  # refit forgets


def test_one_hot_seen_column_names_cost_the_seen_columns_only():
    codes = np.array([[-(2**40), 7], [2**40, 7]])
    one_hot = OneHotCodes(alphabet=(-(2**40), 2**40), columns="seen").fit(codes)  # 2 x (2**41 + 1) columns in all
    names = one_hot.get_feature_names_out()
    assert list(names) == ["x0_-1099511627776", "x0_1099511627776", "x1_7"]
    assert len(names) == one_hot.transform(codes).shape[1]


@pytest.mark.parametrize("cls", [OneHotCodes, BitPlanes, PackedCodes])
def test_a_boolean_alphabet_is_refused_by_name(cls, signed_codes):
    with pytest.raises(ValueError, match=r"alphabet must be a size K or an inclusive range \(low, high\), got True"):
        cls(alphabet=True).fit(signed_codes)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_half_and_single_precision_codes_are_read_without_warnings(dtype, signed_codes):
    strategy = OneHotCodes().fit(signed_codes.astype(dtype))
    np.testing.assert_array_equal(strategy.inverse_transform(strategy.transform(signed_codes)), signed_codes)


# ------------------------------------------------------------------------ what inverses read --
DECODERS = [OneHotCodes(output="tensor"), OneHotCodes(output="dense"), OneHotCodes(columns="seen"),
            PackedCodes(2, output="dense"), BitPlanes(), BitPlanes(output="tensor"), Dequantize()]  # fmt: skip


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: f"{type(d).__name__}-{d.get_params().get('output')}")
def test_inverses_refuse_what_is_not_a_finite_real_number(signed_codes, decoder):
    """NaN won the tensor one-hot's argmax (a lit 2 decoded as 0) and read as a 0 bit; strings were parsed as
    numbers and complex values lost their imaginary part: each is refused by name, as transform refuses them."""
    model = clone(decoder).fit(signed_codes)
    encoded = model.transform(signed_codes)
    encoded = encoded.toarray() if sp.issparse(encoded) else np.asarray(encoded, dtype=np.float64)
    np.testing.assert_array_equal(model.inverse_transform(encoded), signed_codes)
    for bad, message in [(np.nan, "NaN"), (np.inf, "infinity")]:
        spoilt = encoded.copy()
        spoilt.flat[0] = bad
        with pytest.raises(ValueError, match=message):
            model.inverse_transform(spoilt)
    with pytest.raises(ValueError, match="[Cc]omplex"):
        model.inverse_transform(encoded + 1j)
    with pytest.raises(ValueError, match="strings"):
        model.inverse_transform(encoded.astype(str))
    with pytest.raises(ValueError, match="0 sample"):
        model.inverse_transform(encoded[:0])
    big_endian = encoded.astype(encoded.dtype.newbyteorder(">"))  # scipy.sparse refused it for seen columns
    np.testing.assert_array_equal(model.inverse_transform(big_endian), signed_codes)
    np.testing.assert_array_equal(model.inverse_transform(encoded.astype(np.float16)), signed_codes)  # and this


# ------------------------------------------------------------------ edges found by mutation testing --
@pytest.mark.parametrize("strategy", [OneHotCodes, BitPlanes, lambda **kw: PackedCodes(2, **kw)],
                         ids=["one-hot", "bit-planes", "packed"])  # fmt: skip
def test_a_code_one_past_the_given_alphabet_is_refused_at_fit(strategy):
    """One past ``high`` would light the next position's first column (one-hot, packed) or need a bit more."""
    codes = np.array([[0, 1], [3, 4]])
    with pytest.raises(ValueError, match=r"span \[0, 4\], outside alphabet \[0, 3\]"):
        strategy(alphabet=(0, 3)).fit(codes)
    strategy(alphabet=(0, 4)).fit(codes)  # the top of the alphabet itself is a code


def test_an_unknown_code_just_past_the_alphabet_is_ignored_not_moved_to_the_next_position():
    model = OneHotCodes(handle_unknown="ignore", output="dense", columns="all").fit(np.array([[0, 0], [2, 2]]))
    np.testing.assert_array_equal(model.transform(np.array([[3, 0]])), [[0, 0, 0, 1, 0, 0]])  # position 0 empty
    tensor = OneHotCodes(handle_unknown="ignore", output="tensor").fit(np.array([[[0], [0]], [[2], [2]]]))
    channel_0_empty = [0, 0, 0, 1, 0, 0]
    np.testing.assert_array_equal(tensor.transform(np.array([[[3], [0]]]))[0, :, 0], channel_0_empty)


def test_a_one_hot_tensor_with_an_empty_block_has_no_code_to_invert_to(signed_codes):
    model = OneHotCodes(output="tensor").fit(signed_codes)
    onehot = model.transform(signed_codes[:2])
    K = model.alphabet_size_
    onehot[1, :K, 2, 3] = 0  # channel 0 at (2, 3) of the second sample: no symbol
    with pytest.raises(ValueError, match="no active symbol"):
        model.inverse_transform(onehot)


@pytest.mark.parametrize("container", [np.array, sp.csr_matrix], ids=["dense", "sparse"])
def test_soft_scores_invert_to_their_largest_entry(container):
    """Scores rather than exact one-hots (a model's output): each position's largest entry is its code."""
    model = OneHotCodes(alphabet=(-1, 2), output="dense", columns="all").fit(np.array([[-1], [2]]))
    scores = container(np.array([[0.0, 0.2, 0.0, 0.7], [0.6, 0.0, 0.3, 0.1]]))
    np.testing.assert_array_equal(model.inverse_transform(scores), [[2], [-1]])


def test_dequantize_refuses_codes_float32_cannot_hold_and_values_the_fitted_type_cannot():
    model = Dequantize().fit(np.array([[0], [2**24]], dtype=np.int32))
    edge = np.array([[2**24], [-(2**24)]], dtype=np.int32)
    np.testing.assert_array_equal(model.transform(edge), edge)
    with pytest.raises(ValueError, match=r"beyond \+-2\*\*24 have no exact float32 value"):
        model.transform(np.array([[2**24 + 1]], dtype=np.int32))
    small = Dequantize().fit(np.array([[-3], [5]], dtype=np.int8))
    with pytest.raises(ValueError, match="leaves the range of the fitted codes' type int8"):
        small.inverse_transform(np.array([[200.0]]))  # would wrap around to -56
    assert small.inverse_transform(np.array([[127.0]])).tolist() == [[127]]
