"""Array containers that scikit-learn's checks would misread: refused by name, or read as their plain numpy twin.

A masked array's mask was dropped and the values under it encoded; pandas' nullable columns (UInt8, Int16) were
read as float64, so pixels and PCM lost their integer scale; integer labels with pd.NA were rounded through float64
into the store; lists of tensors that require grad or hold bfloat16 crashed in numpy.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch

from walloc_features import DCTTransformer, RawSignal, ResolutionReducer, WaLLoCTransformer
from walloc_features.datasets import CompressedStore
from walloc_features.estimators import MLPHeadClassifier
from walloc_features.quantized import BitPlanes, Dequantize, OneHotCodes

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
CODES = RNG.integers(-8, 8, (12, 6)).astype(np.int8)
TRANSFORMERS = [RawSignal(), ResolutionReducer(4), DCTTransformer(4, block_size=4), WaLLoCTransformer(reduction=4)]


def masked(X, where):
    return np.ma.masked_array(X, mask=np.broadcast_to(where, X.shape))


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_masked_values_are_refused_and_an_unmasked_masked_array_reads_as_its_data(transformer):
    model = transformer.fit(IMAGES)
    hidden = np.zeros(IMAGES.shape, bool)
    hidden[0, 0, 0, 0] = True
    for call in (model.transform, type(transformer)(**transformer.get_params()).fit):
        with pytest.raises(ValueError, match=r"X is a masked array with 1 masked value\(s\).*X.filled\(value\)"):
            call(masked(IMAGES, hidden))
    np.testing.assert_array_equal(model.transform(masked(IMAGES, False)), model.transform(IMAGES))


def test_masked_codes_and_features_are_refused_by_strategies_estimators_and_the_store(tmp_path):
    hidden = np.zeros(CODES.shape, bool)
    hidden[3, 2] = True
    with pytest.raises(ValueError, match="masked value"):
        OneHotCodes().fit(masked(CODES, hidden))
    with pytest.raises(ValueError, match="masked value"):
        MLPHeadClassifier(max_epochs=1).fit(masked(CODES.astype(np.float32), hidden), np.arange(12) % 2)
    store = CompressedStore.create(tmp_path, WaLLoCTransformer(reduction=4).fit(IMAGES))
    labels = np.ma.masked_array(np.arange(12), mask=np.arange(12) == 5)
    with pytest.raises(ValueError, match=r"y is a masked array with 1 masked value"):
        store.append(IMAGES, labels)
    assert len(store) == 0


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_a_nullable_integer_frame_reads_as_its_numpy_integers(transformer):
    flat = IMAGES.reshape(len(IMAGES), -1)
    frame = pd.DataFrame(flat).astype("UInt8")
    params = {"input_shape": (1, 8, 8)}
    expected = type(transformer)(**{**transformer.get_params(), **params}).fit(flat).transform(flat)
    model = type(transformer)(**{**transformer.get_params(), **params}).fit(frame)
    assert np.dtype(model.input_dtype_) == np.uint8  # not float64 pixels on [0, 255]
    np.testing.assert_array_equal(model.transform(frame), expected)
    with pytest.raises(ValueError, match=r"X holds missing values \(pd.NA\)"):
        model.transform(frame.astype("Int16").mask(frame == frame.iloc[0, 0]))


def test_nullable_integer_labels_are_stored_exactly_and_pd_na_refused(tmp_path):
    store = CompressedStore.create(tmp_path, WaLLoCTransformer(reduction=4).fit(IMAGES))
    ids = pd.Series([2**53 + 1, 2**60 + 7] + list(range(10)), dtype="Int64")  # beyond float64's integers
    store.append(IMAGES, ids)
    assert store.read()[1].tolist() == ids.tolist()
    with pytest.raises(ValueError, match=r"y holds missing values \(pd.NA\)"):
        store.append(IMAGES, ids.mask(ids == 3))
    assert len(store) == 12


def test_lists_of_tensors_read_as_one_tensor_of_them():
    model = ResolutionReducer(4).fit(IMAGES.astype(np.float32) / 255)
    tensor = torch.from_numpy(IMAGES.astype(np.float32) / 255)
    for samples in (tensor.clone().requires_grad_(True), tensor.bfloat16()):
        np.testing.assert_array_equal(model.transform(list(samples)), model.transform(samples))
    codes = torch.from_numpy(CODES.astype(np.float32)).requires_grad_(True)
    strategy = Dequantize().fit(CODES)
    np.testing.assert_array_equal(strategy.transform(list(codes)), strategy.transform(CODES))


@pytest.mark.parametrize("strategy", [BitPlanes(), Dequantize()], ids=lambda s: type(s).__name__)
def test_sparse_input_to_an_inverse_reads_as_its_dense_twin(strategy):
    """OneHotCodes and PackedCodes took sparse matrices; BitPlanes and Dequantize crashed on "sparse array length
    is ambiguous"."""
    model = strategy.fit(CODES)
    encoded = model.transform(CODES)
    np.testing.assert_array_equal(model.inverse_transform(scipy.sparse.csr_matrix(encoded)), CODES)


def test_meta_tensors_and_structured_arrays_are_named():
    model = RawSignal().fit(IMAGES)
    with pytest.raises(ValueError, match="'meta' device, which holds no values"):
        model.transform(torch.empty(2, 1, 8, 8, device="meta"))
    records = np.zeros(4, dtype=[("a", np.int8), ("b", np.int8)])
    with pytest.raises(TypeError, match=r"structured dtype \(fields a, b\).*structured_to_unstructured"):
        OneHotCodes().fit(records)


def test_frames_of_other_libraries_pass_through_to_their_own_conversion():
    """Only pandas' own frames have their nullable columns converted: a dask DataFrame has isna and iloc too, but
    no Series name, and failed on it."""
    from walloc_features.features._signals import to_numpy

    class OtherFrame:  # what a dask DataFrame offers of pandas' API
        iloc = dtypes = None

        def isna(self):
            raise AssertionError("read as a pandas frame")

    frame = OtherFrame()
    assert to_numpy(frame) is frame
