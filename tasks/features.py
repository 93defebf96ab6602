"""Features: the one transformation shared by training, batch and real-time scoring.

``build_preprocessor`` returns an unfitted scikit-learn ``Pipeline``:

1. ``coerce``: :class:`SchemaCoercer` turns raw input (strings, ints, the missing
   tokens such as ``unknown``) into canonical dtypes, so every consumer of the model
   artifact, including ``mlflow.pyfunc`` in a fresh process, sees the same values;
2. ``columns``: numeric columns are median-imputed and standardised; category
   columns get ``(missing)`` for missing values and are one-hot encoded.
   Categories never seen in training are encoded as all zeros
   (``handle_unknown="ignore"``), the same way for every consumer.

It is fitted on the training split only and travels inside the model artifact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tasks.errors import DataValidationError
from tasks.schema import Schema, coerce_frame

MISSING_CATEGORY = "(missing)"


class SchemaCoercer(TransformerMixin, BaseEstimator):
    """Select the feature columns and give them canonical dtypes.

    Args:
        schema: the declared schema; only its feature columns are kept.
    """

    def __init__(self, schema: Schema | None = None):
        self.schema = schema

    def fit(self, X: pd.DataFrame, y=None) -> SchemaCoercer:
        self.feature_names_in_ = np.asarray(self.schema.feature_names, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X, columns=self.schema.feature_names)
        missing = [c for c in self.schema.feature_names if c not in X.columns]
        if missing:
            raise DataValidationError(f"input is missing feature column(s) {missing}")
        return coerce_frame(X, self.schema, columns=self.schema.feature_names)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.schema.feature_names, dtype=object)


def build_preprocessor(schema: Schema) -> Pipeline:
    """An unfitted preprocessing pipeline for the schema's feature columns."""
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
            ),
            (
                "onehot",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            ),
        ]
    )
    columns = ColumnTransformer(
        [
            ("num", numeric, schema.numeric_features),
            ("cat", categorical, schema.categorical_features),
        ],
        remainder="drop",
        verbose_feature_names_out=True,
    )
    return Pipeline([("coerce", SchemaCoercer(schema)), ("columns", columns)])


def target_vector(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    """The target as 0/1 integers (1 = ``positive_label``).

    Raises:
        DataValidationError: the target column is missing.
    """
    if schema.target not in df.columns:
        raise DataValidationError(f"target column {schema.target!r} is missing")
    y = df[schema.target].astype(str)
    return (y == schema.positive_label).to_numpy(dtype=np.int64)


def fit_features(train: pd.DataFrame, schema: Schema) -> Pipeline:
    """Fit the preprocessing pipeline on the training split only."""
    return build_preprocessor(schema).fit(train)


def feature_names(preprocessor: Pipeline) -> list[str]:
    """Names of the transformed columns, e.g. ``num__age``, ``cat__job_admin.``."""
    return [str(n) for n in preprocessor.named_steps["columns"].get_feature_names_out()]
