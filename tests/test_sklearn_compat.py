"""scikit-learn's own estimator checks, on flat 2-D input (each row a mono signal)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from walloc_features import WaLLoCTransformer

# No check is expected to fail. check_estimator feeds 2-D data of any width, which
# input_shape=(1, -1) reads as mono signals of that length; J is chosen from the length.
ESTIMATORS = [
    WaLLoCTransformer(input_shape=(1, -1)),
    WaLLoCTransformer(input_shape=(1, -1), decoder="conv", hidden_channels=4, max_epochs=1),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: {})
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
