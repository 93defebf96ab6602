"""API tests run a real `nbship serve` process (Uvicorn on a free local port)
against the test build's registered model. Servers that move the alias get their
own copy of the tracking store, so the shared build is never changed."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import BIN, REPO, Build

FEATURES = [
    "age",
    "job",
    "marital",
    "education",
    "default",
    "balance",
    "housing",
    "loan",
    "contact",
    "day",
    "month",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
]
RECORD = {
    "age": 41,
    "job": "technician",
    "marital": "married",
    "education": "secondary",
    "default": "no",
    "balance": 1200,
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "day": 15,
    "month": "may",
    "campaign": 2,
    "pdays": -1,
    "previous": 0,
    "poutcome": "unknown",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running `nbship serve`; `stop()` ends it and its process group."""

    proc: subprocess.Popen
    url: str
    log_path: Path
    tracking_uri: str
    predictions: Path | None = None

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def copy_store(build: Build, dest: Path) -> str:
    """A private copy of the build's tracking database (artifacts stay shared and
    are only read); returns its tracking URI."""
    dest.mkdir(parents=True, exist_ok=True)
    src = build.tracking_uri.removeprefix("sqlite:///")
    target = dest / "mlflow.db"
    with sqlite3.connect(src) as a, sqlite3.connect(target) as b:
        a.backup(b)
    return f"sqlite:///{target}"


def start_server(
    build: Build,
    folder: Path,
    *args: str,
    tracking_uri: str | None = None,
    api_key: str | None = None,
    wait_ready: bool = True,
    timeout: float = 120,
) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = tracking_uri or build.tracking_uri
    env = build.env()
    env.pop("NBSHIP_API_KEY", None)
    if api_key:
        env["NBSHIP_API_KEY"] = api_key
    log_path = folder / "server.log"
    cmd = [
        str(BIN / "nbship"),
        "serve",
        "--port",
        str(port),
        *build.cli_set(),
        "--set",
        f"tracking_uri={uri}",
        *args,
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log_path, uri)
    deadline = time.monotonic() + timeout
    path = "/ready" if wait_ready else "/health"
    headers = {"X-API-Key": api_key} if api_key else {}
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited {proc.returncode}:\n" + log_path.read_text()[-3000:]
            )
        try:
            if (
                httpx.get(server.url + path, headers=headers, timeout=2).status_code
                == 200
            ):
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(
                f"server not {path} after {timeout}s:\n" + log_path.read_text()[-3000:]
            )
        time.sleep(0.25)


def records_of(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready records of the feature columns (missing -> null)."""
    out = []
    for rec in df[FEATURES].astype(object).to_dict(orient="records"):
        out.append(
            {
                k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
                for k, v in rec.items()
            }
        )
    return out


@pytest.fixture(scope="session")
def api_store(built, tmp_path_factory) -> str:
    return copy_store(built, tmp_path_factory.mktemp("api-store"))


@pytest.fixture(scope="session")
def server(built, api_store, tmp_path_factory):
    """The main server: open (no key), a private store, prediction log on."""
    folder = tmp_path_factory.mktemp("api-server")
    srv = start_server(
        built,
        folder,
        "--prediction-log",
        str(folder / "predictions"),
        tracking_uri=api_store,
    )
    srv.predictions = folder / "predictions"
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def test_rows(built) -> pd.DataFrame:
    return pd.read_parquet(built.products / "split" / "test.parquet")
