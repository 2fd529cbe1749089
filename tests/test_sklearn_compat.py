"""scikit-learn's own estimator checks, on flat 2-D input (each row a mono signal).

JPEGCoefficients (lists of files) and EnCodecTransformer (a model checkpoint) take input the
checks cannot make; their contract is tested in test_baselines.py.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from walloc_features import DCTTransformer, ResidualVQ, ResolutionReducer, WaLLoCTransformer

# No check is expected to fail. check_estimator feeds 2-D data of any width, which
# input_shape=(1, -1) reads as mono signals of that length; J is chosen from the length.
ESTIMATORS = [
    WaLLoCTransformer(input_shape=(1, -1), modality="audio"),
    WaLLoCTransformer(input_shape=(1, -1), modality="audio", decoder="conv", hidden_channels=4, max_epochs=1),
    ResolutionReducer(2, input_shape=(1, -1), modality="audio"),
    DCTTransformer(2, block_size=4, input_shape=(1, -1), modality="audio"),
    ResidualVQ(2, codebook_size=2, patch_size=2, input_shape=(1, -1), modality="audio", random_state=0),
]

# The checks' signals are a few samples long: too short for the reductions, which the transformers say.
pytestmark = pytest.mark.filterwarnings("ignore:reduction=.* is not reachable:UserWarning")


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: {})
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
