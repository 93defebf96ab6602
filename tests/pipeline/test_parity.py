"""One model, one answer: the same test rows through

1. the evaluate stage's in-memory model (the train product it compares),
2. the pipeline's score stage and the `nbship score` batch command,
3. the API in a real Uvicorn process (`nbship serve` on a free local port),
4. `mlflow.pyfunc.load_model(models:/NAME@champion)` in a fresh process,

give probabilities equal to 1e-9."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tasks import io
from tests.api.conftest import records_of, start_server
from tests.conftest import BIN, REPO

pytestmark = pytest.mark.slow
ATOL = 1e-9

PYFUNC = """
import sys, numpy as np, pandas as pd, mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
proba = np.asarray(model.predict(pd.read_parquet(sys.argv[3]).drop(columns=["y"])))
np.save(sys.argv[4], proba[:, 1])
"""


def test_every_path_gives_the_same_probabilities(built, tmp_path):
    register = io.read_json(built.products / "register" / "register.json")
    assert register["promoted"], "parity needs this build's candidate as champion"
    test_path = built.products / "split" / "test.parquet"
    test = pd.read_parquet(test_path)

    # start the three out-of-process consumers at once (they mostly wait on imports)
    batch_out = tmp_path / "batch.parquet"
    batch = subprocess.Popen(
        [
            str(BIN / "nbship"),
            "score",
            str(test_path),
            "--out",
            str(batch_out),
            "--chunk-size",
            "97",
            *built.cli_set(),
        ],
        cwd=REPO,
        env=built.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pyfunc_out = tmp_path / "pyfunc.npy"
    pyfunc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PYFUNC,
            built.tracking_uri,
            f"models:/{built.model_name}@champion",
            str(test_path),
            str(pyfunc_out),
        ],
        cwd=tmp_path,
        env=built.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = start_server(built, tmp_path / "api", "--no-prediction-log")
    try:
        api = []
        recs = records_of(test)
        with server.client() as c:
            for i in range(0, len(recs), 250):
                r = c.post("/predict", content=json.dumps(recs[i : i + 250]))
                assert r.status_code == 200, r.text
                assert r.json()["model_version"] == str(register["model_version"])
                api += [p["probability"] for p in r.json()["predictions"]]
    finally:
        server.stop()
    out, _ = batch.communicate(timeout=300)
    assert batch.returncode == 0, out
    out, _ = pyfunc.communicate(timeout=300)
    assert pyfunc.returncode == 0, out

    evaluate_model = io.load_model(
        next((built.products / "train").glob(f"model-{register['family']}*.joblib"))
    )
    reference = evaluate_model.predict_proba(test)[:, 1]
    batch_scores = pd.read_parquet(batch_out)
    stage_scores = pd.read_parquet(built.products / "score" / "scores.parquet")
    assert batch_scores["row_id"].tolist() == list(range(len(test)))
    paths = {
        "batch command": batch_scores["score"].to_numpy(),
        "score stage": stage_scores["score"].to_numpy(),
        "api": np.asarray(api),
        "pyfunc (fresh process)": np.load(pyfunc_out),
    }
    for name, proba in paths.items():
        assert proba.shape == reference.shape, name
        gap = float(np.max(np.abs(proba - reference)))
        assert gap <= ATOL, f"{name} differs from the evaluate model by {gap:.3g}"
    assert (batch_scores["model_version"] == str(register["model_version"])).all()
