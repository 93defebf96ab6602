"""The whole DAG on the test profile, in a self-contained copy of the project.

The copy (its own git repository, products, data file and MLflow store) is built
once for this module; then it is checked, rebuilt with nothing changed, mutated one
input at a time (`ploomber status` must name exactly the stages that depend on it),
and finally fed bad data, which must stop the build with a clear message and leave
products and registry untouched. Its split files and metrics are compared with the
session build (`built`) for reproducibility.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import BIN, REPO, TEST_MODEL_NAME

pytestmark = pytest.mark.slow

ALL_TASKS = {
    "ingest",
    "validate",
    "split",
    "features",
    "train-logistic",
    "train-xgboost",
    "train-lightgbm",
    "evaluate",
    "register",
    "explain",
    "model-card",
    "score",
    "monitor",
    "report",
}
AFTER_SPLIT = ALL_TASKS - {"ingest", "validate", "split"}
AFTER_FEATURES = AFTER_SPLIT - {"features"}


def run(cmd, cwd, **kw):
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PLOOMBER_ENV_FILENAME": "env.test.yaml"},
        **kw,
    )


def ran_tasks(output: str) -> set[str]:
    """Task names marked True in ploomber's closing 'Ran?' table."""
    table = output[output.rindex("Ran?") :]
    return {
        line.split()[0]
        for line in table.splitlines()[2:]
        if len(line.split()) >= 2 and line.split()[1] == "True"
    }


def outdated_tasks(project: Path) -> set[str]:
    """Tasks `ploomber status` would run now (rendered in this process)."""
    from ploomber.constants import TaskStatus
    from ploomber.spec import DAGSpec

    # Ploomber resolves the `resources_` of grid tasks against the working
    # directory (the others against pipeline.yaml's folder): render from there
    cwd = os.getcwd()
    os.chdir(project)
    try:
        spec = DAGSpec(
            str(project / "pipeline.yaml"), env=str(project / "env.test.yaml")
        )
        dag = spec.to_dag()
        dag.render(show_progress=False)
    finally:
        os.chdir(cwd)
    return {
        name for name, task in dag.items() if task.exec_status != TaskStatus.Skipped
    }


def digest(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in ("pipeline.yaml", "env.test.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    # the default executor (a Jupyter kernel per notebook, through papermill); the
    # session build uses the in-process one, and the reproducibility test below
    # compares the two
    env = root / "env.test.yaml"
    env.write_text(
        env.read_text().replace("executor: ploomber-engine", "executor: papermill")
    )
    assert "executor: papermill" in env.read_text()
    for folder in ("notebooks", "tasks", "config", "data"):
        shutil.copytree(
            REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    (root / ".gitignore").write_text("products-test/\ntracking-test/\n")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(cmd, cwd=root, check=True)
    first = run([BIN / "nbship", "build"], root)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = run([BIN / "ploomber", "build"], root)
    assert second.returncode == 0, second.stderr[-3000:]
    return {"root": root, "first": first, "second": second}


def test_first_build_runs_every_task_and_prints_the_report(project):
    assert ran_tasks(project["first"].stdout) == ALL_TASKS
    report = project["root"] / "products-test" / "index.html"
    assert f"report: {report}" in project["first"].stderr
    html = report.read_text()
    assert "model-card/model-card.html" in html
    assert "monitor/monitor.html" in html
    for stage in (
        "validate",
        "features",
        "train-xgboost",
        "evaluate",
        "register",
        "explain",
    ):
        assert f"{stage}.html" in html or f"{stage}-" in html


def test_second_build_runs_nothing(project):
    assert ran_tasks(project["second"].stdout) == set()
    assert outdated_tasks(project["root"]) == set()


def test_products_exist(project):
    p = project["root"] / "products-test"
    for nb in (
        "validate/validate",
        "features/features",
        "train/train-logistic-0",
        "train/train-xgboost-1",
        "train/train-lightgbm-2",
        "evaluate/evaluate",
        "register/register",
        "explain/explain",
    ):
        assert (p / f"{nb}.ipynb").stat().st_size > 0
        assert "<html" in (p / f"{nb}.html").read_text()[:2000].lower()
    scores = pd.read_parquet(p / "score" / "scores.parquet")
    test = pd.read_parquet(p / "split" / "test.parquet")
    assert len(scores) == len(test) and scores["score"].between(0, 1).all()
    assert set(scores["label"]) <= {"no", "yes"}


def test_mlflow_holds_the_build_the_families_and_the_champion(project):
    root = project["root"]
    result = json.loads((root / "products-test/register/register.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{root}/tracking-test/mlflow.db")
    client = mlflow.MlflowClient()
    parent = client.get_run(result["run_id"])
    exp = parent.info.experiment_id
    children = client.search_runs(
        [exp], filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'"
    )
    assert {c.data.tags["nbship.family"] for c in children} == {
        "logistic",
        "xgboost",
        "lightgbm",
    }
    for child in children:
        history = client.get_metric_history(child.info.run_id, "trial_val_roc_auc")
        assert [m.step for m in history] == [0, 1]  # n_trials: 2 in env.test.yaml
    tags = parent.data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, text=True, capture_output=True
    ).stdout.strip()
    assert tags["lineage.git_commit"] == head
    assert tags["lineage.git_dirty"] == "false"
    data_sha = hashlib.sha256((root / "data/bank-full.csv.gz").read_bytes()).hexdigest()
    assert tags["lineage.data_sha256"] == data_sha
    assert tags["lineage.version.mlflow"] == mlflow.__version__
    assert parent.data.params["n_trials"] == "2"
    assert parent.data.metrics["test_roc_auc"] == pytest.approx(
        result["candidate_metric"]
    )
    # registered, promoted (first build) and loadable through the alias
    mv = client.get_model_version_by_alias(TEST_MODEL_NAME, "champion")
    assert str(mv.version) == result["model_version"] == "1"
    assert mv.tags["lineage.data_sha256"] == data_sha and mv.tags["promoted"] == "true"
    model = mlflow.sklearn.load_model(f"models:/{TEST_MODEL_NAME}@champion")
    test = pd.read_parquet(root / "products-test/split/test.parquet")
    scores = pd.read_parquet(root / "products-test/score/scores.parquet")
    assert model.predict_proba(test)[:, 1] == pytest.approx(scores["score"], abs=1e-12)


def test_same_inputs_and_seed_give_identical_splits_and_metrics(project, built):
    """Two builds (papermill here, the in-process executor in `built`) of the same
    inputs and seed: byte-identical splits, identical metrics."""
    ours = project["root"] / "products-test"
    for part in ("train", "val", "test"):
        a = (ours / "split" / f"{part}.parquet").read_bytes()
        b = (built.products / "split" / f"{part}.parquet").read_bytes()
        assert a == b, f"{part} split differs between two builds"
    m1 = json.loads((ours / "evaluate/metrics.json").read_text())["families"]
    m2 = json.loads((built.products / "evaluate/metrics.json").read_text())["families"]
    for family in m1:
        assert m1[family]["test"] == m2[family]["test"]
        assert m1[family]["val"] == m2[family]["val"]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("notebooks/features.py", AFTER_SPLIT),
        ("tasks/split.py", AFTER_SPLIT | {"split"}),
        ("tasks/train.py", AFTER_FEATURES),
        ("tasks/report.py", {"report"}),
        ("config/schema.yaml", ALL_TASKS - {"ingest"}),
    ],
)
def test_editing_a_file_reruns_that_stage_and_its_descendants(project, path, expected):
    target = project["root"] / path
    original = target.read_text()
    try:
        target.write_text(original + "\n# edited\n")
        assert outdated_tasks(project["root"]) == expected
    finally:
        target.write_text(original)
    assert outdated_tasks(project["root"]) == set()


def test_changing_a_parameter_reruns_what_uses_it(project):
    env = project["root"] / "env.test.yaml"
    original = env.read_text()
    try:
        env.write_text(original.replace("n_trials: 2", "n_trials: 3"))
        assert outdated_tasks(project["root"]) == AFTER_FEATURES
    finally:
        env.write_text(original)


def test_changing_the_data_file_reruns_everything(project):
    data = project["root"] / "data/bank-full.csv.gz"
    original = data.read_bytes()
    try:
        text = gzip.decompress(original).decode()
        data.write_bytes(gzip.compress(text.replace("\n58;", "\n59;", 1).encode()))
        assert outdated_tasks(project["root"]) == ALL_TASKS
    finally:
        data.write_bytes(original)
    assert outdated_tasks(project["root"]) == set()


# ---------------------------------------------------------------- bad input
def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    good = pd.read_csv(REPO / "data/bank-full.csv.gz", sep=";", nrows=400)
    folder.mkdir(exist_ok=True)
    cases = {}

    def csv(name, df):
        path = folder / f"{name}.csv"
        df.to_csv(path, sep=";", index=False)
        return path

    cases["missing column"] = (
        csv("missing", good.drop(columns=["age"])),
        "column 'age' is declared in the schema but missing",
    )
    typed = good.astype({"balance": object})
    typed.loc[[3, 8], "balance"] = "lots"
    cases["wrong type"] = (
        csv("typed", typed),
        "column 'balance': 2 row(s) with value is not a number",
    )
    empty = folder / "empty.csv"
    empty.write_bytes(b"")
    cases["empty file"] = (empty, "is empty (0 bytes)")
    third = good.copy()
    third.loc[[5], "y"] = "maybe"
    cases["third target value"] = (
        csv("third", third),
        "column 'y': 1 row(s) with value not among",
    )
    garbage = folder / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not really parquet")
    cases["unreadable file"] = (garbage, "could not be read as parquet")
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "wrong type",
        "empty file",
        "third target value",
        "unreadable file",
    ],
)
def test_bad_input_stops_the_build_with_a_clear_error_and_damages_nothing(
    project, case, tmp_path
):
    root = project["root"]
    products = root / "products-test"
    kept = [
        p
        for p in products.rglob("*")
        if p.is_file() and "ingest" not in p.parts and "validate" not in p.parts
    ]
    kept += [
        products / "validate/validated.parquet",
        products / "validate/quality.json",
    ]
    before = digest(kept)
    db = root / "tracking-test/mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    client = mlflow.MlflowClient()
    versions = len(client.search_model_versions(f"name = '{TEST_MODEL_NAME}'"))
    runs = len(
        client.search_runs([client.get_experiment_by_name("nbship-test").experiment_id])
    )
    champion = client.get_model_version_by_alias(TEST_MODEL_NAME, "champion").version

    path, message = _bad_files(tmp_path)[case]
    result = run([BIN / "nbship", "build", "--env--data_path", path], root)

    assert result.returncode == 3, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()
    assert any(message in line for line in last[-8:]), "\n".join(last[-8:])
    assert last[-1].startswith("Nothing downstream ran")
    assert digest(kept) == before
    assert len(client.search_model_versions(f"name = '{TEST_MODEL_NAME}'")) == versions
    assert (
        len(
            client.search_runs(
                [client.get_experiment_by_name("nbship-test").experiment_id]
            )
        )
        == runs
    )
    assert (
        client.get_model_version_by_alias(TEST_MODEL_NAME, "champion").version
        == champion
    )
