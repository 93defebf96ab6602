import numpy as np
import pandas as pd
import pytest

from tasks.errors import ConfigError, DataValidationError
from tasks.features import (
    build_preprocessor,
    feature_names,
    fit_features,
    target_vector,
)
from tasks.schema import coerce_frame
from tasks.split import split_data


def test_split_is_stratified_disjoint_and_reproducible(frame):
    train, val, test = split_data(frame, "y", test_size=0.2, val_size=0.2, seed=3)
    assert len(train) + len(val) + len(test) == len(frame)
    assert len(test) == 80 and len(val) == 80
    rate = (frame["y"] == "yes").mean()
    for part in (train, val, test):
        assert abs((part["y"] == "yes").mean() - rate) < 0.03
    again = split_data(frame, "y", test_size=0.2, val_size=0.2, seed=3)
    for a, b in zip((train, val, test), again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    other = split_data(frame, "y", test_size=0.2, val_size=0.2, seed=4)
    assert not test.equals(other[2])


def test_split_rejects_bad_shares_and_tiny_classes(frame):
    with pytest.raises(ConfigError, match="must be in"):
        split_data(frame, "y", test_size=0.6, val_size=0.5)
    tiny = pd.concat([frame[frame.y == "no"], frame[frame.y == "yes"].head(2)])
    with pytest.raises(DataValidationError, match="at least 5 rows of each class"):
        split_data(tiny, "y")


def test_preprocessor_is_fitted_on_train_and_handles_unseen(schema, frame):
    pre = fit_features(frame, schema)
    names = feature_names(pre)
    assert "num__age" in names and "cat__contact_cell" in names
    # missing values get their own category; the token never becomes one
    assert "cat__job_(missing)" in names
    assert not any("unknown" in n for n in names)
    row = frame.head(1).copy()
    row["job"] = "astronaut"  # unseen category: all job columns zero
    out = pd.DataFrame(pre.transform(row), columns=names)
    job_cols = [n for n in names if n.startswith("cat__job_")]
    assert out[job_cols].to_numpy().sum() == 0


def test_raw_and_coerced_input_transform_identically(schema, frame):
    pre = fit_features(frame, schema)
    coerced = coerce_frame(frame, schema, columns=schema.feature_names)
    np.testing.assert_array_equal(pre.transform(frame), pre.transform(coerced))


def test_preprocessor_needs_feature_columns(schema, frame):
    pre = fit_features(frame, schema)
    with pytest.raises(
        DataValidationError, match=r"missing feature column\(s\) \['age'\]"
    ):
        pre.transform(frame.drop(columns=["age"]))


def test_dropped_column_never_reaches_the_model(schema, frame):
    pre = build_preprocessor(schema).fit(frame)
    assert not any("leak" in n for n in feature_names(pre))


def test_target_vector(schema, frame):
    y = target_vector(frame, schema)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert y.sum() == (frame["y"] == "yes").sum()
