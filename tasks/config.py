"""Read the build parameters (env.yaml) for the project's own CLI commands.

Ploomber reads env.yaml for builds; the CLI commands that run outside a build
(serve, score, promote, ...) read the same file through :func:`load_env`, which
resolves the ``{{here}}`` placeholder the same way and honours
``PLOOMBER_ENV_FILENAME`` and ``--env--KEY VALUE`` style overrides.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def find_env_file(start: str | Path = ".") -> Path:
    """The env file Ploomber would use: ``$PLOOMBER_ENV_FILENAME`` or ``env.yaml``,
    searched from ``start`` upwards to the folder holding ``pipeline.yaml``.

    Raises:
        ConfigError: no such file.
    """
    name = os.environ.get("PLOOMBER_ENV_FILENAME", "env.yaml")
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "pipeline.yaml").is_file():
            path = folder / name
            if path.is_file():
                return path
            raise ConfigError(f"{name} not found next to {folder / 'pipeline.yaml'}")
    raise ConfigError(
        f"no pipeline.yaml in {here} or its parents: run this command inside the "
        "project folder"
    )


def _render(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            if m.group(1) not in context:
                raise ConfigError(f"unknown placeholder {{{{{m.group(1)}}}}}")
            return context[m.group(1)]

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    return value


def load_env(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The env file as a dict with ``{{here}}`` resolved and overrides applied.

    Raises:
        ConfigError: the file is missing, not a mapping, or an override names an
            unknown key.
    """
    path = Path(path) if path else find_env_file()
    if not path.is_file():
        raise ConfigError(f"env file {str(path)!r} not found")
    env = yaml.safe_load(path.read_text()) or {}
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters")
    for key, value in (overrides or {}).items():
        if key not in env:
            raise ConfigError(f"unknown parameter {key!r}; known: {sorted(env)}")
        env[key] = yaml.safe_load(value) if isinstance(value, str) else value
    context = {
        "here": str(path.parent.resolve()),
        "root": str(path.parent.resolve()),
        "cwd": str(Path.cwd()),
    }
    return _render(env, context)
