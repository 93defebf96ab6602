#!/usr/bin/env bash
# Create (or refresh) .venv-airflow: Apache Airflow, pinned in requirements-airflow.txt,
# in a venv of its own, for tests/pipeline/test_airflow_export.py.
#
#   scripts/airflow-venv.sh            # no-op when the venv matches the pins
#   AIRFLOW_VENV=/tmp/af scripts/airflow-venv.sh
#
# Idempotent: a stamp file inside the venv holds the hash of requirements-airflow.txt;
# the venv is rebuilt only when the pins change or the stamp is missing. Uses uv
# (from .venv, or on PATH) and falls back to pip. Needs network (PyPI) the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
REQS="$ROOT/requirements-airflow.txt"
STAMP="$VENV/.installed"
PYTHON="${PYTHON:-python3.11}"

want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

UV=""
if [[ -x "$ROOT/.venv/bin/uv" ]]; then
  UV="$ROOT/.venv/bin/uv"
elif command -v uv >/dev/null 2>&1; then
  UV="$(command -v uv)"
fi

start=$SECONDS
rm -rf "$VENV"
if [[ -n "$UV" ]]; then
  "$UV" venv --quiet --python "$PYTHON" "$VENV"
  "$UV" pip install --quiet --python "$VENV/bin/python" -r "$REQS"
else
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
fi
echo "$want" > "$STAMP"
echo "airflow-venv: $VENV ready in $((SECONDS - start)) s" >&2
