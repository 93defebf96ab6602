"""FeatureEncoder computes what the scikit-learn transformers it replaces compute
(the reference below), with the same output names, on real rows with missing
values and unseen categories."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tasks.features import MISSING_CATEGORY, FeatureEncoder, SchemaCoercer
from tasks.schema import load_schema
from tests.conftest import REPO


def reference(schema) -> Pipeline:
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    columns = ColumnTransformer(
        [
            ("num", numeric, schema.numeric_features),
            ("cat", categorical, schema.categorical_features),
        ]
    )
    return Pipeline([("coerce", SchemaCoercer(schema)), ("columns", columns)])


@pytest.fixture(scope="module")
def data():
    schema = load_schema(REPO / "config/schema.yaml")
    # a random sample: the file is ordered by date, and its first rows have no
    # `contact` at all (the reference drops an all-missing column; we keep it)
    df = pd.read_csv(REPO / "data/bank-full.csv.gz", sep=";").sample(
        n=6000, random_state=0
    )
    train, new = df.iloc[:5000], df.iloc[5000:].copy()
    new.loc[new.index[:20], "job"] = "astronaut"  # unseen
    new.loc[new.index[20:40], "balance"] = np.nan  # missing numeric
    return schema, train, new


def test_same_values_and_names_as_the_sklearn_transformers(data):
    schema, train, new = data
    ours = Pipeline(
        [
            ("coerce", SchemaCoercer(schema)),
            (
                "columns",
                FeatureEncoder(schema.numeric_features, schema.categorical_features),
            ),
        ]
    )
    ours.fit(train)
    ref = reference(schema).fit(train)
    assert list(ours.named_steps["columns"].get_feature_names_out()) == list(
        ref.named_steps["columns"].get_feature_names_out()
    )
    for rows in (new, new.head(1), new.head(64), new.head(65)):
        np.testing.assert_allclose(
            ours.transform(rows), ref.transform(rows), rtol=0, atol=1e-12
        )


def test_unseen_category_is_all_zeros_and_groups_map_back(data):
    schema, train, new = data
    enc = FeatureEncoder(["age"], ["job"]).fit(
        SchemaCoercer(schema).fit(train).transform(train)
    )
    row = pd.DataFrame({"age": [40.0], "job": ["astronaut"]})
    out = enc.transform(row)
    assert out[0, 1:].sum() == 0
    assert set(enc.groups_.values()) == {"age", "job"}
    assert enc.groups_["cat__job_(missing)"] == "job"


def test_constant_column_is_centred_not_scaled():
    enc = FeatureEncoder(["x"], []).fit(pd.DataFrame({"x": [3.0, 3.0, np.nan]}))
    np.testing.assert_array_equal(
        enc.transform(pd.DataFrame({"x": [3.0, 5.0]})), [[0.0], [2.0]]
    )
