"""The bundled dataset is what the README says, and passes the checks every build
runs on it (the validate stage's rules)."""

import hashlib
import re

import pytest

from tasks.io import read_table
from tasks.schema import load_schema
from tasks.validate import check_frame, validate_frame
from tests.conftest import REPO

DATA = REPO / "data" / "bank-full.csv.gz"


@pytest.fixture(scope="module")
def df():
    return read_table(DATA, csv_sep=";")


def test_sha256_matches_the_data_readme():
    documented = re.search(
        r"SHA-256 \| `([0-9a-f]{64})`", (REPO / "data/README.md").read_text()
    ).group(1)
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == documented


def test_shape_and_target_balance(df):
    assert df.shape == (45211, 17)
    assert (df["y"] == "yes").mean() == pytest.approx(0.117, abs=0.001)


def test_passes_the_declared_schema(df):
    schema = load_schema(REPO / "config/schema.yaml")
    report = validate_frame(df, schema)
    check_frame(report, source=str(DATA))
    assert report["duplicates"] == 0
    assert report["profile"]["poutcome"]["missing"] == 36959  # `unknown` is missing


def test_leaking_duration_is_not_a_feature():
    schema = load_schema(REPO / "config/schema.yaml")
    assert "duration" in schema.names and "duration" not in schema.feature_names


def test_licence_and_source_are_documented():
    text = (REPO / "data/README.md").read_text()
    assert "CC BY 4.0" in text and "Moro" in text
