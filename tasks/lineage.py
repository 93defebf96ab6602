"""Lineage: where a model came from (code version, data hash, parameters, packages)."""

from __future__ import annotations

import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "nbship",
    "ploomber",
    "papermill",
    "pandas",
    "numpy",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "mlflow",
)


def git_info(path: str | Path = ".") -> dict[str, Any]:
    """Commit, branch and dirty flag of the git work tree holding ``path``.

    Outside a git work tree (or without git) the values are ``"unknown"``.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "branch": "unknown", "dirty": "unknown"}
    try:
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
    except subprocess.SubprocessError:
        branch = "unknown"
    # untracked and ignored files (products, the venv) do not make a tree dirty
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "branch": branch, "dirty": dirty}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = platform.python_version()
    return out


def lineage_tags(
    data_sha256: str,
    data_source: str,
    project_dir: str | Path = ".",
    build_id: str | None = None,
) -> dict[str, str]:
    """Flat ``lineage.*`` tags for an MLflow run or model version."""
    git = git_info(project_dir)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {
        "lineage.git_commit": str(git["commit"]),
        "lineage.git_branch": str(git["branch"]),
        "lineage.git_dirty": str(git["dirty"]).lower(),
        "lineage.data_sha256": data_sha256,
        "lineage.data_source": data_source,
        "lineage.build_id": build_id or now,
        "lineage.built_at": now,
        "lineage.host": socket.gethostname(),
    }
    tags.update({f"lineage.version.{k}": v for k, v in package_versions().items()})
    return tags
