import pandas as pd
import pytest

from tasks.errors import DataValidationError
from tasks.validate import check_frame, find_row_errors, validate_frame


def rules(report):
    return {(e["column"], e["rule"]) for e in report["errors"]}


def test_clean_frame_has_no_errors(schema, frame):
    report = validate_frame(frame, schema)
    assert report["errors"] == []
    assert report["rows"] == len(frame)
    check_frame(report)  # does not raise


def test_missing_column_is_named(schema, frame):
    report = validate_frame(frame.drop(columns=["age"]), schema)
    assert ("age", "present") in rules(report)
    with pytest.raises(DataValidationError, match="column 'age' is declared"):
        check_frame(report)


def test_wrong_type_names_rows_and_values(schema, frame):
    frame["age"] = frame["age"].astype(object)
    frame.loc[[3, 7], "age"] = "forty"
    report = validate_frame(frame, schema)
    err = next(e for e in report["errors"] if e["rule"] == "type")
    assert err["column"] == "age" and err["count"] == 2
    assert err["examples"] == [
        {"row": 3, "value": "forty"},
        {"row": 7, "value": "forty"},
    ]
    with pytest.raises(DataValidationError, match="row 3: 'forty'"):
        check_frame(report)


def test_range_categories_and_nulls(schema, frame):
    frame.loc[0, "age"] = 5
    frame.loc[1, "contact"] = "pigeon"
    frame.loc[2, "contact"] = None
    found = rules(validate_frame(frame, schema))
    assert {("age", "min"), ("contact", "categories"), ("contact", "not_null")} <= found


def test_target_with_a_third_value(schema, frame):
    frame.loc[5, "y"] = "maybe"
    report = validate_frame(frame, schema)
    err = next(e for e in report["errors"] if e["column"] == "y")
    assert err["rule"] == "categories"
    assert err["examples"] == [{"row": 5, "value": "maybe"}]


def test_single_class_target(schema, frame):
    frame["y"] = "no"
    assert ("y", "binary") in rules(validate_frame(frame, schema))


def test_empty_frame(schema, frame):
    report = validate_frame(frame.iloc[:0], schema)
    assert [e["rule"] for e in report["errors"]] == ["not_empty"]


def test_duplicates_warn_below_limit_and_fail_above(schema, frame):
    dup = pd.concat([frame, frame.iloc[:4]], ignore_index=True)
    report = validate_frame(dup, schema, max_duplicate_share=0.05)
    assert report["duplicates"] == 4
    assert [w["rule"] for w in report["warnings"]] == ["duplicates"]
    report = validate_frame(dup, schema, max_duplicate_share=0.001)
    assert (None, "duplicates") in rules(report)


def test_missing_tokens_count_as_missing(schema, frame):
    frame.loc[0, "contact"] = "unknown"  # contact is not nullable
    assert ("contact", "not_null") in rules(validate_frame(frame, schema))


def test_row_errors_give_reasons_per_row(schema, frame):
    frame.loc[1, "age"] = 200
    frame.loc[1, "contact"] = "fax"
    reasons = find_row_errors(frame, schema, columns=schema.feature_names)
    assert reasons[0] == ""
    assert reasons[1] == (
        "age: value above max 100; contact: value not among the 2 allowed categories"
    )
    assert (reasons != "").sum() == 1
