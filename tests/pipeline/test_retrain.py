"""`nbship retrain`, `promote` and `rollback` against the session build (`built`).

- Two retrains started together: one runs (an up-to-date build runs no task), the
  other exits with the lock code at once.
- A retrain whose build fails on bad data (a missing column) exits with the build
  code and leaves the champion alias where it was.
- Promote and rollback move the alias, record who/when/why, make a running API
  (`nbship serve`) serve the new champion at once, and refuse when there is
  nothing to roll back to.

Tests that change the registry work on a copy of the session build's MLflow store
(same artifacts), so other tests keep seeing the registry `built` made.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from tasks.errors import ModelError
from tasks.schedule import EXIT_BUILD_FAILED, EXIT_LOCKED, EXIT_MONITOR_ALERT
from tests.api.conftest import start_server
from tests.conftest import BIN, REPO

pytestmark = pytest.mark.slow


def nbship(build, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "nbship"), *map(str, args)],
        cwd=REPO,
        env=build.env(),
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


@pytest.fixture
def registry(built, tmp_path) -> str:
    """A copy of the session build's MLflow store; returns its tracking URI."""
    src = Path(built.tracking_uri.removeprefix("sqlite:///"))
    dst = tmp_path / "tracking" / "mlflow.db"
    dst.parent.mkdir(parents=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return f"sqlite:///{dst}"


def client_for(uri: str) -> mlflow.MlflowClient:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient()


def champion(client: mlflow.MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, "champion").version)


def test_two_concurrent_retrains_run_once(built, tmp_path):
    state = tmp_path / "state"
    lock = state / "retrain.lock"
    cmd = [str(BIN / "nbship"), "retrain", "--state-dir", str(state), *built.cli_set()]
    first = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=built.env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not lock.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.1)
        second = subprocess.run(
            cmd, cwd=REPO, env=built.env(), capture_output=True, text=True, timeout=300
        )
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    assert second.returncode == EXIT_LOCKED, second.stderr[-3000:]
    assert "another retrain run holds" in second.stderr
    latest = json.loads((built.products / "retrain" / "latest.json").read_text())
    # the monitor (if present) decides between 0 and its alert code
    monitor = latest["steps"]["monitor"]
    expected = EXIT_MONITOR_ALERT if monitor.get("status") == "alert" else 0
    assert first.returncode == expected, err[-4000:]
    assert latest["pid"] == first.pid and latest["steps"]["build"]["exit_code"] == 0
    assert latest["champion_before"] == latest["champion_after"]  # nothing new
    assert "ploomber build" in err
    refused = [
        json.loads(p.read_text())
        for p in (built.products / "retrain").glob("retrain-*.json")
    ]
    assert any(
        s["status"] == "locked" and s["lock_holder"]["pid"] == first.pid
        for s in refused
    )
    assert not lock.exists()


def test_a_failed_build_leaves_the_champion(built, registry, tmp_path):
    data = pd.read_csv(REPO / "data" / "bank-full.csv.gz", sep=";", nrows=3000)
    bad = tmp_path / "latest.csv"
    data.drop(columns=["age"]).to_csv(bad, sep=";", index=False)
    client = client_for(registry)
    before = champion(client, built.model_name)
    versions = len(client.search_model_versions(f"name = '{built.model_name}'"))

    result = nbship(
        built,
        "retrain",
        "--data",
        bad,
        "--state-dir",
        tmp_path / "state",
        "--set",
        f"products={tmp_path / 'products'}",
        "--set",
        f"tracking_uri={registry}",
        "--set",
        f"artifact_root={built.artifact_root}",
    )
    assert result.returncode == EXIT_BUILD_FAILED, result.stderr[-4000:]
    assert "age" in result.stderr
    assert champion(client, built.model_name) == before
    assert len(client.search_model_versions(f"name = '{built.model_name}'")) == versions
    summary = json.loads((tmp_path / "products/retrain/latest.json").read_text())
    assert summary["status"] == "build_failed"
    assert summary["data_path"] == str(bad)
    assert summary["steps"]["build"]["exit_code"] == 3  # a data error
    assert summary["champion_before"]["version"] == before
    assert summary["champion_after"]["version"] == before
    assert summary["champion_changed"] is False


def test_promote_rollback_and_back(built, registry, tmp_path, request):
    from tasks.promote import alias_history, rollback
    from tasks.score import load_registered_model

    name = built.model_name
    client = client_for(registry)
    old = champion(client, name)
    src = client.get_model_version(name, old)
    new = str(
        client.create_model_version(name, source=src.source, run_id=src.run_id).version
    )
    opts = [
        "--set",
        f"tracking_uri={registry}",
        "--set",
        f"artifact_root={built.artifact_root}",
    ]
    api = start_server(built, tmp_path / "api", tracking_uri=registry)
    request.addfinalizer(api.stop)
    reload_url = ["--reload-url", f"{api.url}/reload?wait=true"]

    def serving() -> str:
        return str(httpx.get(f"{api.url}/metadata", timeout=30).json()["model_version"])

    assert serving() == old
    r = nbship(
        built,
        "promote",
        new,
        "--reason",
        "canary passed",
        "--by",
        "alice",
        *reload_url,
        *opts,
    )
    assert r.returncode == 0, r.stderr
    assert "reloaded" in r.stderr
    assert champion(client, name) == new
    assert serving() == new
    tags = client.get_model_version(name, new).tags
    assert tags["previous_champion"] == old
    assert (tags["champion.set_by"], tags["champion.set_reason"]) == (
        "alice",
        "canary passed",
    )

    r = nbship(
        built,
        "rollback",
        "--reason",
        "calibration off",
        "--by",
        "bob",
        *reload_url,
        *opts,
    )
    assert r.returncode == 0, r.stderr
    assert f"v{new} -> v{old}" in r.stderr
    assert champion(client, name) == old
    assert serving() == old  # the API serves the previous version again
    back = client.get_model_version(name, old).tags
    assert back["rolled_back_from"] == new
    assert back["champion.set_action"] == "rollback"
    assert client.get_model_version(name, new).tags["champion.demoted_by"] == "bob"
    _, info = load_registered_model(registry, f"models:/{name}@champion")
    assert info["model_version"] == old  # what batch scoring and the API load

    history = alias_history(registry, "nbship-test", name)
    assert [
        (h["action"], h["from_version"], h["to_version"], h["by"], h["reason"])
        for h in history
    ] == [
        ("rollback", new, old, "bob", "calibration off"),
        ("promote", old, new, "alice", "canary passed"),
    ]
    run = client.get_run(history[0]["run_id"])
    assert run.data.tags["nbship.kind"] == "alias-change"

    # and back (in-process: the same functions the two commands above ran)
    where = {
        "tracking_uri": registry,
        "artifact_root": str(built.artifact_root),
        "experiment": "nbship-test",
        "model_name": name,
    }
    record = rollback(**where, to=new, reason="fixed upstream", by="carol")
    assert (record["from_version"], record["to_version"]) == (old, new)
    assert champion(client, name) == new
    assert client.get_model_version(name, new).tags["previous_champion"] == old
    with pytest.raises(ModelError, match="already is @champion"):
        rollback(**where, to=new, reason="again")
    assert len(alias_history(registry, "nbship-test", name)) == 3


def test_rollback_with_nothing_older_is_refused(built, registry):
    client = client_for(registry)
    src = client.get_model_version_by_alias(built.model_name, "champion")
    client.create_registered_model("solo")
    client.create_model_version("solo", source=src.source, run_id=src.run_id)
    client.set_registered_model_alias("solo", "champion", "1")

    r = nbship(
        built,
        "rollback",
        "--reason",
        "panic",
        "--set",
        "model_name=solo",
        "--set",
        f"tracking_uri={registry}",
    )
    assert r.returncode == 4
    assert "error: nothing to roll back to: v1 is the champion" in r.stderr
    assert champion(client, "solo") == "1"
