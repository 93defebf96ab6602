"""Property-based fuzz of /predict and /explain: whatever the body, never a 5xx.

Bodies mix valid values, values just outside the schema (bounds, categories,
types), missing and unknown fields, lists of records and raw junk bytes. Bounded:
150 examples against the running server (a few seconds)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.schema import load_schema
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SCHEMA = load_schema(REPO / "config" / "schema.yaml")

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _value(col):
    if col.is_numeric:
        lo = int(col.min) if col.min is not None else -(10**6)
        hi = int(col.max) if col.max is not None else 10**6
        good = st.integers(lo, hi) if col.type == "integer" else st.floats(lo, hi)
        edge = st.sampled_from([lo - 1, hi + 1, lo + 0.5, 10**30, -(10**30)])
        return st.one_of(good, good, edge, JUNK)
    cats = list(col.categories or ["x"]) + list(SCHEMA.missing_values)
    return st.one_of(
        st.sampled_from(cats), st.sampled_from(cats), st.text(max_size=10), JUNK
    )


RECORD = st.fixed_dictionaries(
    {c.name: _value(c) for c in SCHEMA.features[:10]},
    optional={
        **{c.name: _value(c) for c in SCHEMA.features[10:]},
        "zzz_extra": JUNK,
        "y": JUNK,
    },
)
BODY = st.one_of(
    RECORD.map(json.dumps),
    st.lists(RECORD, min_size=0, max_size=4).map(json.dumps),
    JUNK.map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    RECORD.map(lambda r: json.dumps(r)[:-3]),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=BODY, path=st.sampled_from(["/predict", "/predict", "/explain"]))
def test_no_body_makes_the_server_fail(server, body, path):
    with server.client() as c:
        r = c.post(
            path,
            content=body.encode("utf-8", "surrogatepass"),
            headers={"content-type": "application/json"},
        )
    assert r.status_code < 500, (r.status_code, body, r.text[:500])
    if r.status_code == 200:
        n = len(json.loads(body)) if body.lstrip().startswith("[") else 1
        key = "predictions" if path == "/predict" else "explanations"
        assert len(r.json()[key]) == n
    elif r.status_code == 422:
        assert all(d["msg"] for d in r.json()["detail"])
