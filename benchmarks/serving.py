"""Serving benchmark: our API vs `mlflow models serve` vs in-process predict_proba,
and batch scoring of a 1,000,000-row file vs in-memory predict_proba.

    .venv/bin/python benchmarks/serving.py            # default env (env.yaml)
    .venv/bin/python benchmarks/serving.py --requests 200 --rows 200000

Needs a registered champion (`make build`). Everything runs on this machine over
the loopback: one client (a minimal keep-alive HTTP/1.1 client on asyncio, so the
client's own cost stays small and equal for both servers), the same records (rows
resampled from the default data), each server's own request envelope
(our API: the record; MLflow: {"dataframe_records": [record]}). Bounded: every
phase sends at most --requests requests and stops after --max-seconds.

Targets (issue 3): p50 single-row latency < 5 ms, >= 2x the throughput of
`mlflow models serve`, zero errors; batch scoring (Parquet read + validation +
predict + Parquet write) >= 50% of the in-memory predict_proba floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from tasks.config import load_env  # noqa: E402
from tasks.schema import load_schema  # noqa: E402


# ---------------------------------------------------------------- client
class Conn:
    """One keep-alive HTTP/1.1 connection: POST JSON, read status and body."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _latency(
    port: int, path: str, bodies: list[bytes], n: int, max_s: float
) -> tuple[list[float], int]:
    conn = Conn("127.0.0.1", port)
    await conn.open()
    for b in bodies[:20]:  # warm-up
        await conn.post(path, b)
    times, errors = [], 0
    stop = time.perf_counter() + max_s
    for i in range(n):
        t = time.perf_counter()
        status, _ = await conn.post(path, bodies[i % len(bodies)])
        times.append(time.perf_counter() - t)
        errors += status != 200
        if time.perf_counter() > stop:
            break
    await conn.close()
    return times, errors


async def _throughput(
    port: int, path: str, bodies: list[bytes], concurrency: int, n: int, max_s: float
) -> tuple[float, int, int]:
    conns = [Conn("127.0.0.1", port) for _ in range(concurrency)]
    for c in conns:
        await c.open()
    counter = {"next": 0, "ok": 0, "err": 0}
    stop = time.perf_counter() + max_s

    async def worker(c: Conn) -> None:
        while counter["next"] < n and time.perf_counter() < stop:
            i = counter["next"]
            counter["next"] += 1
            try:
                status, _ = await c.post(path, bodies[i % len(bodies)])
                counter["ok" if status == 200 else "err"] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                counter["err"] += 1
                await c.close()
                await c.open()

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    done = counter["ok"] + counter["err"]
    return done / elapsed, counter["err"], done


# ---------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(
    cmd: list[str], env: dict, log: Path, port: int, probe: str, timeout: float = 180
) -> subprocess.Popen:
    import httpx

    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[0]} exited:\n{log.read_text()[-2000:]}")
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code
                == 200
            ):
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    _stop(proc)
    raise SystemExit(f"{cmd} not ready after {timeout}s:\n{log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _bench_server(name: str, port: int, path: str, bodies: list[bytes], args) -> dict:
    times, errors = asyncio.run(
        _latency(port, path, bodies, args.requests, args.max_seconds)
    )
    row = {
        "target": name,
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
        "errors": errors,
        "requests": len(times),
    }
    for c in (1, 8, 32):
        rps, err, done = asyncio.run(
            _throughput(port, path, bodies, c, args.requests, args.max_seconds)
        )
        row[f"rps_c{c}"] = rps
        row["errors"] += err
        row["requests"] += done
    return row


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--requests", type=int, default=400, help="requests per phase (default 400)"
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="time cap per phase (default 20)",
    )
    ap.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="rows of the batch file (default 1,000,000)",
    )
    ap.add_argument(
        "--skip-mlflow", action="store_true", help="do not start `mlflow models serve`"
    )
    args = ap.parse_args()

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env = load_env()
    schema = load_schema(env["schema_path"])
    name, uri = env["model_name"], env["tracking_uri"]
    tmp = Path(tempfile.mkdtemp(prefix="nbship-bench-"))
    data = pd.read_csv(env["data_path"], sep=env["csv_sep"])
    records = json.loads(
        data[schema.feature_names].sample(500, random_state=0).to_json(orient="records")
    )
    ours = [json.dumps(r).encode() for r in records]
    theirs = [json.dumps({"dataframe_records": [r]}).encode() for r in records]

    from tasks.score import load_registered_model, score_file

    model, info = load_registered_model(uri, f"models:/{name}@champion")
    print(
        f"model {name} v{info['model_version']} ({info['tags'].get('family')}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows: list[dict] = []

    # (a) our API
    port = _free_port()
    proc = _start(
        [
            str(BIN / "nbship"),
            "serve",
            "--port",
            str(port),
            "--prediction-log",
            str(tmp / "predictions"),
        ],
        {**os.environ},
        tmp / "nbship.log",
        port,
        "/ready",
    )
    try:
        rows.append(_bench_server("nbship serve", port, "/predict", ours, args))
    finally:
        _stop(proc)
    print("measured nbship serve", flush=True)

    # (b) mlflow models serve
    if not args.skip_mlflow:
        port = _free_port()
        proc = _start(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{name}@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            # it runs `uvicorn` from PATH: the venv's
            {
                **os.environ,
                "MLFLOW_TRACKING_URI": uri,
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            tmp / "mlflow.log",
            port,
            "/ping",
        )
        try:
            rows.append(
                _bench_server("mlflow models serve", port, "/invocations", theirs, args)
            )
        finally:
            _stop(proc)
        print("measured mlflow models serve", flush=True)

    # (c) in-process predict_proba, one row per call (the floor): as logged, and
    # with one estimator thread as the API runs it (see ServeSettings)
    frames = [pd.DataFrame([r], columns=schema.feature_names) for r in records]
    estimator = model.steps[-1][1]
    logged_jobs = estimator.get_params().get("n_jobs")
    for label, jobs in (
        ("in-process predict_proba", logged_jobs),
        ("in-process predict_proba, 1 thread", 1),
    ):
        if "n_jobs" in estimator.get_params():
            estimator.set_params(n_jobs=jobs)
        for f in frames[:20]:
            model.predict_proba(f)
        times = []
        for i in range(min(args.requests, 300)):
            t = time.perf_counter()
            model.predict_proba(frames[i % len(frames)])
            times.append(time.perf_counter() - t)
        rows.append(
            {
                "target": label,
                "p50_ms": 1000 * float(np.percentile(times, 50)),
                "p99_ms": 1000 * float(np.percentile(times, 99)),
                "rps_c1": 1 / float(np.mean(times)),
                "rps_c8": float("nan"),
                "rps_c32": float("nan"),
                "errors": 0,
                "requests": len(times),
            }
        )
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=logged_jobs)

    table = pd.DataFrame(rows).set_index("target")
    print("\nSingle-row serving (loopback, same client, same records)")
    print(
        table[["p50_ms", "p99_ms", "rps_c1", "rps_c8", "rps_c32", "errors", "requests"]]
        .round(1)
        .to_string()
    )
    if "mlflow models serve" in table.index:
        ratio = (
            table.loc["nbship serve", ["rps_c1", "rps_c8", "rps_c32"]]
            / table.loc["mlflow models serve", ["rps_c1", "rps_c8", "rps_c32"]]
        )
        print(
            "throughput ratio nbship / mlflow: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items())
        )

    # batch: 1M rows resampled from the default data
    big = tmp / "batch-input.parquet"
    data.sample(args.rows, replace=True, random_state=1).reset_index(
        drop=True
    ).to_parquet(big)
    del data
    t = time.perf_counter()
    frame = pd.read_parquet(big, columns=schema.feature_names)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    model.predict_proba(frame)
    floor_s = time.perf_counter() - t
    del frame
    t = time.perf_counter()
    result = score_file(
        model,
        big,
        tmp / "scores.parquet",
        schema,
        info["threshold"],
        info["model_version"],
        rejects=tmp / "rejects.parquet",
    )
    batch_s = time.perf_counter() - t
    n = args.rows
    print(f"\nBatch scoring, {n:,} rows (Parquet in, Parquet out, chunks of 100,000)")
    batch = pd.DataFrame(
        [
            {
                "path": "in-memory predict_proba (floor)",
                "seconds": floor_s,
                "rows_per_s": n / floor_s,
            },
            {
                "path": "score_file: read + validate + predict + write",
                "seconds": batch_s,
                "rows_per_s": n / batch_s,
            },
        ]
    ).set_index("path")
    print(batch.round(1).to_string())
    print(
        f"batch / floor: {floor_s / batch_s:.0%} (reading the whole file into "
        f"memory first took {read_s:.1f} s, not counted in the floor); "
        f"{result.rejected} rows rejected"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
