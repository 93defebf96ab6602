"""Tiny in-memory data shaped like the default schema, for fast unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.schema import schema_from_dict

SPEC = {
    "target": "y",
    "positive_label": "yes",
    "drop": ["leak"],
    "missing_values": ["unknown"],
    "columns": {
        "age": {"type": "integer", "min": 18, "max": 100},
        "balance": {"type": "float", "nullable": True},
        "job": {
            "type": "category",
            "nullable": True,
            "categories": ["admin", "tech", "retired"],
        },
        "contact": {"type": "category", "categories": ["cell", "phone"]},
        "leak": {"type": "integer", "min": 0},
        "y": {"type": "category", "categories": ["no", "yes"]},
    },
}


@pytest.fixture
def schema():
    return schema_from_dict(SPEC)


def make_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Rows where `age` and `contact` carry signal about `y`."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    contact = rng.choice(["cell", "phone"], n)
    logit = (age - 50) / 12 + np.where(contact == "cell", 0.8, -0.8)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame(
        {
            "age": age,
            "balance": rng.normal(1000, 300, n).round(2),
            "job": rng.choice(["admin", "tech", "retired", "unknown"], n),
            "contact": contact,
            "leak": rng.integers(0, 500, n),
            "y": y,
        }
    )


@pytest.fixture
def frame():
    return make_frame()
