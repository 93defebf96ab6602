"""The scoring API, end to end against real `nbship serve` processes."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.api.conftest import RECORD, copy_store, records_of, start_server

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- happy paths
def test_health_ready_metadata(server, built):
    with server.client() as c:
        assert c.get("/health").json()["status"] == "ok"
        ready = c.get("/ready").json()
        assert ready["ready"] is True and ready["model_name"] == built.model_name
        meta = c.get("/metadata").json()
    assert meta["alias"] == "champion" and meta["model_version"] == "1"
    assert meta["family"] in ("logistic", "xgboost", "lightgbm")
    assert 0 < meta["threshold"] < 1
    assert "test_roc_auc" in meta["training_metrics"]
    assert {"git_commit", "data_sha256"} <= set(meta["lineage"])
    assert "age" in meta["schema"]["columns"]


def test_predict_one_record(server, built):
    with server.client() as c:
        r = c.post("/predict", json=RECORD, headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "abc-123" == r.headers["x-request-id"]
    assert body["model_name"] == built.model_name and body["model_version"] == "1"
    (pred,) = body["predictions"]
    assert 0 <= pred["probability"] <= 1
    assert pred["label"] == (
        "yes" if pred["probability"] >= body["threshold"] else "no"
    )


def test_predict_many_records_in_order(server, test_rows):
    recs = records_of(test_rows.head(25))
    with server.client() as c:
        batch = c.post("/predict", json=recs).json()["predictions"]
        singles = [
            c.post("/predict", json=r).json()["predictions"][0] for r in recs[:5]
        ]
    assert len(batch) == 25
    # each row gets the same probability alone as in a batch
    assert [p["probability"] for p in batch[:5]] == [p["probability"] for p in singles]


def test_missing_optional_fields_and_missing_tokens_mean_missing(server):
    nullable = ["job", "education", "contact", "poutcome"]
    without = {k: v for k, v in RECORD.items() if k not in nullable}
    as_null = {**RECORD, **dict.fromkeys(nullable)}
    as_token = {**RECORD, **dict.fromkeys(nullable, "unknown")}
    with server.client() as c:
        probs = [
            c.post("/predict", json=r).json()["predictions"][0]["probability"]
            for r in (without, as_null, as_token)
        ]
    assert probs[0] == probs[1] == probs[2]


def test_explain_adds_up_to_the_raw_score(server):
    with server.client() as c:
        pred = c.post("/predict", json=RECORD).json()["predictions"][0]
        ex = c.post("/explain", json=[RECORD, RECORD]).json()
        raw = c.post("/explain?aggregate=false", json=RECORD).json()
    assert ex["units"] == "log-odds" and len(ex["explanations"]) == 2
    e = ex["explanations"][0]
    assert set(e["contributions"]) == set(RECORD)
    assert (
        abs(e["base_value"] + sum(e["contributions"].values()) - e["raw_score"]) < 1e-4
    )
    assert e["probability"] == pred["probability"]
    cols = raw["explanations"][0]["contributions"]
    assert any(k.startswith("cat__job_") for k in cols)
    assert sum(cols.values()) == pytest.approx(
        sum(e["contributions"].values()), abs=1e-6
    )


def test_metrics_are_prometheus_text(server):
    with server.client() as c:
        c.post("/predict", json=RECORD)
        c.post("/predict", json={"age": "x"})
        r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE nbship_http_requests_total counter" in text
    assert (
        'nbship_http_requests_total{method="POST",path="/predict",status="200"}' in text
    )
    assert 'nbship_http_errors_total{kind="client",path="/predict"}' in text
    assert (
        'nbship_http_request_duration_seconds_bucket{le="+Inf",path="/predict"}' in text
    )
    assert "nbship_prediction_score_count" in text
    assert 'nbship_model_info{model_name="bank-marketing-test"' in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            float(value)


def test_request_log_is_json_without_feature_values(server):
    with server.client() as c:
        rid = c.post("/predict", json=RECORD).json()["request_id"]
    time.sleep(0.2)
    lines = server.log_lines()
    mine = [x for x in lines if x.get("request_id") == rid]
    assert len(mine) == 1
    line = mine[0]
    assert line["path"] == "/predict" and line["status"] == 200
    assert line["records"] == 1 and line["model_version"] == "1"
    assert line["duration_ms"] > 0
    assert "features" not in line
    assert "technician" not in server.log_path.read_text()


def test_predictions_land_in_the_parquet_log(server):
    with server.client() as c:
        body = c.post("/predict", json=[RECORD, {**RECORD, "age": 70}]).json()
    rid = body["request_id"]
    deadline = time.monotonic() + 15
    while True:
        files = list(server.predictions.rglob("*.parquet"))
        if files:
            log = pd.read_parquet(files)
            mine = log[log["request_id"] == rid]
            if len(mine) == 2:
                break
        assert time.monotonic() < deadline, "prediction not logged within 15 s"
        time.sleep(0.5)
    mine = mine.sort_values("record")
    assert mine["probability"].tolist() == [
        p["probability"] for p in body["predictions"]
    ]
    assert mine["age"].tolist() == [41.0, 70.0]
    assert (mine["model_version"] == "1").all() and mine["job"].iloc[0] == "technician"
    assert str(mine["ts"].dtype).startswith("datetime64")


# ---------------------------------------------------------------- every 4xx
BAD = [
    ("not json", b'{"age": ', 400, None),
    ("empty body", b"", 400, None),
    ("scalar body", b"42", 422, None),
    ("wrong type", {**RECORD, "age": "old"}, 422, "age"),
    ("boolean as number", {**RECORD, "balance": True}, 422, "balance"),
    ("fraction for integer", {**RECORD, "age": 40.5}, 422, "age"),
    ("below min", {**RECORD, "age": 12}, 422, "age"),
    ("above max", {**RECORD, "day": 32}, 422, "day"),
    ("unseen category", {**RECORD, "job": "astronaut"}, 422, "job"),
    (
        "missing token where not nullable",
        {**RECORD, "marital": "unknown"},
        422,
        "marital",
    ),
    (
        "missing required field",
        {k: v for k, v in RECORD.items() if k != "month"},
        422,
        "month",
    ),
    ("null required field", {**RECORD, "housing": None}, 422, "housing"),
    ("unknown field", {**RECORD, "salary": 10}, 422, "salary"),
    ("empty list", [], 422, None),
    ("list of non-objects", [1, 2], 422, None),
]


@pytest.mark.parametrize("name, body, status, field", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_4xx_naming_field_and_reason(
    server, name, body, status, field
):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with server.client() as c:
        r = c.post(
            "/predict", content=content, headers={"content-type": "application/json"}
        )
        r2 = c.post("/explain", content=content)
    assert r.status_code == status, r.text
    assert r2.status_code == status
    detail = r.json()["detail"]
    if field is not None:
        assert any(d["field"] == field and d["msg"] for d in detail), detail


def test_target_and_dropped_columns_are_accepted_and_ignored(server):
    with server.client() as c:
        a = c.post("/predict", json=RECORD).json()["predictions"]
        b = c.post("/predict", json={**RECORD, "y": "yes", "duration": 900}).json()
    assert b["predictions"] == a


def test_error_on_one_record_names_its_position(server):
    with server.client() as c:
        r = c.post("/predict", json=[RECORD, {**RECORD, "pdays": -5}])
    assert r.status_code == 422
    (d,) = r.json()["detail"]
    assert (d["record"], d["field"], d["loc"]) == (1, "pdays", ["body", 1, "pdays"])
    assert "greater than or equal to -1" in d["msg"]


def test_too_many_records_too_large_body_and_routing_errors(server):
    with server.client() as c:
        assert c.post("/predict", json=[RECORD] * 1001).status_code == 422
        big = b"[" + b" " * (1 << 20) + b"]"
        assert c.post("/predict", content=big).status_code == 413

        def chunks():
            for _ in range(40):
                yield b" " * 32768

        # no Content-Length (chunked upload): stopped while streaming
        assert c.post("/predict", content=chunks()).status_code == 413
        assert c.get("/predict").status_code == 405
        assert c.get("/nowhere").status_code == 404


# ---------------------------------------------------------------- hot swap
@contextlib.contextmanager
def _registry(tracking_uri: str):
    """An MlflowClient on `tracking_uri`. MLflow resolves a version's logged-model
    source through the global tracking URI, so that is pointed there too (and put
    back afterwards)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous)


def _register_copy(tracking_uri: str, name: str, source: str | None = None) -> str:
    """A new version of `name` (the champion's artifacts, or a broken source)."""
    with _registry(tracking_uri) as client:
        champ = client.get_model_version_by_alias(name, "champion")
        mv = client.create_model_version(
            name,
            source=source or champ.source,
            run_id=champ.run_id,
            tags=dict(champ.tags),
        )
    return str(mv.version)


def _set_alias(tracking_uri: str, name: str, version: str) -> None:
    with _registry(tracking_uri) as client:
        client.set_registered_model_alias(name, "champion", version)


def test_hot_swap_under_concurrent_requests_drops_nothing(server, built, test_rows):
    new_version = _register_copy(server.tracking_uri, built.model_name)
    recs = records_of(test_rows.head(8))
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def hammer(i: int) -> None:
        with server.client() as c:
            while not stop.is_set():
                try:
                    r = c.post("/predict", json=recs[i % len(recs)])
                    version = (
                        r.json().get("model_version") if r.status_code == 200 else None
                    )
                    results.append((r.status_code, version))
                except httpx.HTTPError as e:  # a dropped request is a failure too
                    results.append((0, repr(e)))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        _set_alias(server.tracking_uri, built.model_name, new_version)
        with server.client() as c:
            r = c.post("/reload", params={"wait": "true"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "swapped",
            "model_version": new_version,
            "previous_version": "1",
        }
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    statuses = [s for s, _ in results]
    assert statuses and all(s == 200 for s in statuses), [
        r for r in results if r[0] != 200
    ][:5]
    versions = [v for _, v in results]
    assert "1" in versions and new_version in versions
    # once swapped, never back: the old model is gone for new requests
    first_new = versions.index(new_version)
    assert set(versions[first_new:]) == {new_version}
    with server.client() as c:
        assert c.get("/metadata").json()["model_version"] == new_version
        again = c.post("/reload", params={"wait": "true"}).json()
    assert again["status"] == "unchanged"


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(server, built, tmp_path):
    with server.client() as c:
        serving = c.get("/ready").json()["model_version"]
    broken = _register_copy(
        server.tracking_uri,
        built.model_name,
        source=(tmp_path / "no-model-here").as_uri(),
    )
    _set_alias(server.tracking_uri, built.model_name, broken)
    try:
        with server.client() as c:
            r = c.post("/reload", params={"wait": "true"})
            assert r.status_code == 502, r.text
            assert r.json()["model_version"] == serving
            assert c.post("/predict", json=RECORD).json()["model_version"] == serving
            meta = c.get("/metadata").json()
        assert meta["reload"]["last_error"]
        assert any(x.get("event") == "model_load_failed" for x in server.log_lines())
    finally:
        _set_alias(server.tracking_uri, built.model_name, serving)


# ---------------------------------------------------------------- other servers
def test_api_key_required_when_set_and_alias_polling(built, tmp_path):
    """With NBSHIP_API_KEY set every endpoint but the probes needs the key; this
    server also polls the alias every 0.5 s and picks up a move by itself."""
    store = copy_store(built, tmp_path / "store")
    srv = start_server(
        built,
        tmp_path,
        "--poll-interval",
        "0.5",
        "--no-prediction-log",
        tracking_uri=store,
        api_key="s3cret",
    )
    try:
        with srv.client() as c:
            assert c.get("/health").status_code == 200
            assert c.get("/ready").status_code == 200
            r = c.post("/predict", json=RECORD)
            assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
            assert (
                c.post(
                    "/predict", json=RECORD, headers={"X-API-Key": "wrong"}
                ).status_code
                == 401
            )
            assert c.get("/metrics").status_code == 401
            assert c.post("/reload").status_code == 401
            ok = c.post("/predict", json=RECORD, headers={"X-API-Key": "s3cret"})
            assert ok.status_code == 200
            new_version = _register_copy(store, built.model_name)
            _set_alias(store, built.model_name, new_version)
            deadline = time.monotonic() + 30
            while c.get("/ready").json()["model_version"] != new_version:
                assert time.monotonic() < deadline, "poll did not pick up the alias"
                time.sleep(0.25)
    finally:
        srv.stop()


def test_open_api_without_a_key(server):
    with server.client() as c:
        assert c.post("/predict", json=RECORD).status_code == 200
        assert c.get("/metrics").status_code == 200


def test_missing_model_is_503_with_a_clear_log(built, tmp_path):
    srv = start_server(
        built, tmp_path, "--set", "model_name=no-such-model", wait_ready=False
    )
    try:
        with srv.client() as c:
            deadline = time.monotonic() + 60
            while (ready := c.get("/ready")).json()["reason"] == "loading":
                assert time.monotonic() < deadline
                time.sleep(0.25)
            assert ready.status_code == 503
            assert "no-such-model" in ready.json()["reason"]
            assert c.get("/health").status_code == 200
            r = c.post("/predict", json=RECORD)
            assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
            assert c.post("/explain", json=RECORD).status_code == 503
            assert c.get("/metadata").status_code == 503
        failed = [x for x in srv.log_lines() if x.get("event") == "model_load_failed"]
        assert failed and "no-such-model" in failed[0]["error"]
        assert failed[0]["level"] == "error"
    finally:
        srv.stop()


def test_probabilities_match_the_model_in_process(server, built, test_rows):
    """The API's probabilities equal predict_proba of the registered artifact
    (the full four-way parity is tests/pipeline/test_parity.py)."""
    import mlflow

    with _registry(built.tracking_uri):
        model = mlflow.sklearn.load_model(f"models:/{built.model_name}/1")
    rows = test_rows.head(40)
    expected = model.predict_proba(rows)[:, 1]
    with server.client() as c:
        got = [
            p["probability"]
            for p in c.post("/predict", json=records_of(rows)).json()["predictions"]
        ]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
