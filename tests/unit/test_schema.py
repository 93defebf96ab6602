import numpy as np
import pandas as pd
import pytest

from tasks.errors import ConfigError
from tasks.schema import (
    coerce_frame,
    infer_schema,
    load_schema,
    schema_from_dict,
    schema_to_dict,
)
from tests.unit.conftest import SPEC


def test_features_exclude_target_and_dropped(schema):
    assert schema.feature_names == ["age", "balance", "job", "contact"]
    assert schema.numeric_features == ["age", "balance"]
    assert schema.categorical_features == ["job", "contact"]
    assert schema.labels == ("no", "yes")


def test_round_trip(schema):
    assert schema_from_dict(schema_to_dict(schema)) == schema


@pytest.mark.parametrize(
    "change, message",
    [
        ({"target": "nope"}, "target 'nope' is not a declared column"),
        ({"positive_label": "maybe"}, "exactly two categories"),
        ({"drop": ["ghost"]}, "undeclared columns ['ghost']"),
        ({"columns": {"a": {"type": "text"}}}, "has type 'text'"),
    ],
)
def test_bad_schema_names_the_problem(change, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        schema_from_dict({**SPEC, **change})


def test_missing_file_says_how_to_draft_one(tmp_path):
    with pytest.raises(ConfigError, match="infer-schema"):
        load_schema(tmp_path / "schema.yaml")


def test_coerce_frame_gives_canonical_dtypes(schema, frame):
    out = coerce_frame(frame, schema, columns=schema.feature_names)
    assert list(out.columns) == schema.feature_names
    assert out["age"].dtype == np.float64
    assert out["job"].dtype == object
    # the missing token becomes NaN, never a category
    assert out["job"].isna().sum() == (frame["job"] == "unknown").sum()
    assert set(out["job"].dropna()) <= {"admin", "tech", "retired"}


def test_coerce_frame_whole_floats_match_integer_categories():
    schema = schema_from_dict(
        {
            "target": "y",
            "positive_label": "1",
            "columns": {
                "x": {"type": "float"},
                "y": {"type": "category", "categories": ["0", "1"]},
            },
        }
    )
    out = coerce_frame(pd.DataFrame({"x": [1.5, 2.0], "y": [1.0, 0.0]}), schema)
    assert out["y"].tolist() == ["1", "0"]


def test_infer_schema_drafts_types_bounds_and_categories(frame):
    spec = infer_schema(
        frame,
        target="y",
        positive_label="yes",
        drop=["leak"],
        missing_values=["unknown"],
    )
    cols = spec["columns"]
    assert cols["age"]["type"] == "integer"
    assert cols["age"]["min"] == int(frame["age"].min())
    assert cols["balance"]["type"] == "float"
    assert cols["job"] == {
        "type": "category",
        "nullable": True,
        "categories": ["admin", "retired", "tech"],
    }
    assert cols["y"]["categories"] == ["no", "yes"]
    # the draft is itself a valid schema
    assert schema_from_dict(spec).target == "y"


def test_infer_schema_rejects_non_binary_target(frame):
    frame.loc[0, "y"] = "maybe"
    with pytest.raises(ConfigError, match="exactly two values, found 3"):
        infer_schema(frame, target="y")
