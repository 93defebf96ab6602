"""Shared fixtures. Tests never touch the real products or tracking store: the
pipeline fixture builds the test profile (env.test.yaml) into a temporary folder
with its own MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST_MODEL_NAME = "bank-marketing-test"


@dataclass
class Build:
    """A test-profile build in its own folder: where things are, how to rebuild."""

    root: Path
    products: Path
    tracking_uri: str
    artifact_root: Path
    model_name: str = TEST_MODEL_NAME
    last: subprocess.CompletedProcess | None = field(default=None, repr=False)

    def overrides(self, **extra: str) -> list[str]:
        values = {
            "products": str(self.products),
            "tracking_uri": self.tracking_uri,
            "artifact_root": str(self.artifact_root),
            **extra,
        }
        args = []
        for key, value in values.items():
            args += [f"--env--{key}", str(value)]
        return args

    def env(self) -> dict[str, str]:
        return {**os.environ, "PLOOMBER_ENV_FILENAME": "env.test.yaml"}

    def ploomber(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        """Run `ploomber ARGS` on the test profile in this folder."""
        cmd = [str(BIN / "ploomber"), *args, *self.overrides(**extra)]
        self.last = subprocess.run(
            cmd,
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        return self.last

    def nbship(self, *args: str) -> subprocess.CompletedProcess:
        """Run `nbship ARGS` (a project command) with this build's environment."""
        return subprocess.run(
            [str(BIN / "nbship"), *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
        )

    def cli_set(self) -> list[str]:
        """`--set KEY=VALUE` options pointing project commands at this build."""
        return [
            "--set",
            f"products={self.products}",
            "--set",
            f"tracking_uri={self.tracking_uri}",
            "--set",
            f"artifact_root={self.artifact_root}",
        ]


def make_build(root: Path) -> Build:
    return Build(
        root=root,
        products=root / "products",
        tracking_uri=f"sqlite:///{root / 'tracking' / 'mlflow.db'}",
        artifact_root=root / "tracking" / "artifacts",
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Build:
    """The whole DAG built once per session on the test profile (about 1 minute)."""
    build = make_build(tmp_path_factory.mktemp("pipeline"))
    result = build.ploomber("build")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return build
