"""The exported Airflow DAG imports with Airflow itself and mirrors pipeline.yaml.

Airflow lives in its own venv, .venv-airflow (pinned in requirements-airflow.txt),
which scripts/airflow-venv.sh creates on first use (a no-op afterwards). The DAG
file is parsed by Airflow's ``DagBag`` in a subprocess of that venv, with
AIRFLOW_HOME in a temporary folder: parsing needs no metadata database, and the
test checks that none was created.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

AIRFLOW_VENV = REPO / ".venv-airflow"

PARSE = r"""
import json, sys
try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models import DagBag
import airflow

bag = DagBag(dag_folder=sys.argv[1])
out = {
    "airflow": airflow.__version__,
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {
        dag_id: {
            "schedule": str(getattr(dag, "schedule", None)),
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "operator": type(t).__name__,
                    "bash_command": getattr(t, "bash_command", None),
                    "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                    "skip_on_exit_code": sorted(t.skip_on_exit_code or []),
                }
                for t in dag.tasks
            },
        }
        for dag_id, dag in bag.dags.items()
    },
}
with open(sys.argv[2], "w") as fh:
    json.dump(out, fh)
"""


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """.venv-airflow's interpreter, created on first use."""
    subprocess.run(
        ["bash", str(REPO / "scripts" / "airflow-venv.sh")], check=True, timeout=1200
    )
    return AIRFLOW_VENV / "bin" / "python"


def pipeline_upstream() -> dict[str, list[str]]:
    """Tasks and upstream sets straight from Ploomber (the source of truth)."""
    from ploomber.spec import DAGSpec

    dag = DAGSpec(str(REPO / "pipeline.yaml"), lazy_import=True).to_dag()
    return {name: sorted(dag[name].upstream) for name in dag}


def parse_with_airflow(python: Path, dag_file: Path, home: Path) -> dict:
    out = home / "parsed.json"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent),
    }
    proc = subprocess.run(
        [str(python), "-c", PARSE, str(dag_file), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_exported_dag_imports_and_matches_the_pipeline(
    airflow_python, tmp_path, monkeypatch
):
    from tasks.airflow import SKIP_EXIT_CODE, export_airflow

    monkeypatch.setenv("PLOOMBER_ENV_FILENAME", "env.test.yaml")
    dag_file = tmp_path / "dags" / "nbship_dag.py"
    export_airflow(
        dag_file,
        spec_path=REPO / "pipeline.yaml",
        dag_id="nbship",
        schedule="0 3 * * *",
        overrides={"n_trials": 1},
    )
    expected = pipeline_upstream()
    home = tmp_path / "airflow-home"
    home.mkdir()

    parsed = parse_with_airflow(airflow_python, dag_file, home)

    assert parsed["import_errors"] == {}
    assert parsed["airflow"].startswith("3.")
    assert list(parsed["dags"]) == ["nbship"]
    dag = parsed["dags"]["nbship"]
    assert dag["schedule"] == "0 3 * * *"
    got = {task_id: t["upstream"] for task_id, t in dag["tasks"].items()}
    assert got == expected
    assert {"train-logistic", "train-xgboost", "train-lightgbm"} <= set(got)
    for task_id, task in dag["tasks"].items():
        assert task["operator"] == "BashOperator"
        assert (
            f"/.venv/bin/ploomber task {task_id} --env--n_trials 1"
            in task["bash_command"]
        )
        assert task["bash_command"].startswith(f"cd {REPO} ")
        assert task["trigger_rule"] == "none_failed"
        assert task["skip_on_exit_code"] == [SKIP_EXIT_CODE]
    assert not list(home.rglob("*.db"))  # parsing created no metadata database


def test_an_up_to_date_task_exits_with_the_skip_code(
    built, airflow_python, tmp_path, monkeypatch
):
    """Run one generated command for real: `report` is up to date in `built`."""
    from tasks.airflow import SKIP_EXIT_CODE, export_airflow

    monkeypatch.setenv("PLOOMBER_ENV_FILENAME", "env.test.yaml")
    dag_file = tmp_path / "dags" / "nbship_dag.py"
    overrides = {
        "products": built.products,
        "tracking_uri": built.tracking_uri,
        "artifact_root": built.artifact_root,
    }
    export_airflow(dag_file, spec_path=REPO / "pipeline.yaml", overrides=overrides)
    home = tmp_path / "airflow-home"
    home.mkdir()
    command = parse_with_airflow(airflow_python, dag_file, home)["dags"]["nbship"][
        "tasks"
    ]["report"]["bash_command"]

    proc = subprocess.run(
        ["bash", "-c", command],
        env=built.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == SKIP_EXIT_CODE, proc.stdout[-3000:] + proc.stderr
    assert "report is up to date" in proc.stdout
