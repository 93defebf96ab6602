"""The retrain lock and the retrain loop's decisions (tasks/schedule.py).

The lock is exercised with real processes: racing acquirers, a holder killed with
SIGKILL, lock files left by dead, foreign or ancient holders. The loop's exit-code
logic runs with small step functions in place of the build and the monitor; the
real build under the lock is tests/pipeline/test_retrain.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.errors import ConfigError
from tasks.schedule import (
    EXIT_BUILD_FAILED,
    EXIT_LOCKED,
    EXIT_MONITOR_ALERT,
    EXIT_MONITOR_FAILED,
    EXIT_OK,
    LockHeldError,
    RetrainLock,
    RetrainPlan,
    pid_alive,
    read_lock,
    run_retrain,
    verdict_status,
)

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(path: Path, **fields) -> dict:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "then",
        "started_ts": time.time(),
        "proc_start": None,
        "token": "t-old",
        "command": "test",
        **fields,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return info


# ---------------------------------------------------------------- the lock
def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "state" / "retrain.lock"
    first = RetrainLock(path)
    info = first.acquire()
    assert read_lock(path)["token"] == info["token"]
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()

    with pytest.raises(LockHeldError) as err:
        RetrainLock(path).acquire()
    assert err.value.exit_code == EXIT_LOCKED
    assert err.value.holder["token"] == info["token"]
    assert str(os.getpid()) in str(err.value)

    assert first.release() is True
    assert not path.exists()
    with RetrainLock(path):  # free again
        assert path.exists()
    assert not path.exists()


RACER = """
import json, sys, time
from tasks.schedule import LockHeldError, RetrainLock
path, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
try:
    with RetrainLock(path):
        print("acquired", flush=True)
        time.sleep(1.5)
except LockHeldError:
    print("refused", flush=True)
"""


def test_concurrent_acquirers_exactly_one_wins(tmp_path):
    path = tmp_path / "retrain.lock"
    start = time.time() + 1.0  # all processes try at the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), str(start)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["acquired", "refused", "refused", "refused"]
    assert not path.exists()


CRASHER = """
import os, signal, sys
from tasks.schedule import RetrainLock
RetrainLock(sys.argv[1]).acquire()
print("holding", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies without releasing
"""


def test_lock_left_by_a_killed_process_is_broken(tmp_path):
    path = tmp_path / "retrain.lock"
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9 and "holding" in proc.stdout
    left = read_lock(path)
    assert left is not None and not pid_alive(left["pid"])

    lock = RetrainLock(path)
    info = lock.acquire()
    assert info["pid"] == os.getpid()
    assert [b["token"] for b in lock.broken] == [left["token"]]
    assert "not running" in lock.broken[0]["reason"]
    lock.release()


@pytest.mark.parametrize(
    ("fields", "stale"),
    [
        ({"pid": "dead"}, True),  # dead pid on this host
        ({"started_ts": time.time() - 7200}, True),  # older than max age (1 h)
        ({"proc_start": "1"}, True),  # our pid, but another process's start time
        ({"host": "elsewhere.example", "pid": 1}, False),  # foreign host, recent
        (
            {"host": "elsewhere.example", "pid": 1, "started_ts": time.time() - 7200},
            True,
        ),  # foreign host, too old
        ({}, False),  # a live process on this host (this one)
    ],
)
def test_stale_locks_are_broken_live_ones_respected(tmp_path, fields, stale):
    path = tmp_path / "retrain.lock"
    if fields.get("pid") == "dead":
        fields = {**fields, "pid": _dead_pid()}
    _write_lock(path, **fields)
    lock = RetrainLock(path, max_age_s=3600)
    if stale:
        lock.acquire()
        assert lock.broken and lock.broken[0]["token"] == "t-old"
        assert read_lock(path)["token"] == lock.info["token"]
        lock.release()
    else:
        with pytest.raises(LockHeldError):
            lock.acquire()
        assert read_lock(path)["token"] == "t-old"  # untouched


def test_unreadable_lock_is_respected_while_fresh_and_broken_when_old(tmp_path):
    path = tmp_path / "retrain.lock"
    path.write_text("")  # a writer between create and write, or one that died there
    with pytest.raises(LockHeldError):
        RetrainLock(path).acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))
    lock = RetrainLock(path)
    lock.acquire()
    assert "unreadable" in lock.broken[0]["reason"]
    lock.release()


def test_release_never_deletes_a_successors_lock(tmp_path):
    path = tmp_path / "retrain.lock"
    slow = RetrainLock(path)
    slow.acquire()
    time.sleep(0.05)
    successor = RetrainLock(path, max_age_s=0.01)  # judges the slow run stale
    successor.acquire()
    assert successor.broken
    assert slow.release() is False  # its lock was broken: leaves the new one
    assert read_lock(path)["token"] == successor.info["token"]
    assert successor.release() is True


def test_a_stale_break_guard_does_not_block_forever(tmp_path):
    path = tmp_path / "retrain.lock"
    _write_lock(path, pid=_dead_pid())
    guard = path.with_name(path.name + ".break")
    guard.write_text("")  # a breaker that crashed mid-break
    old = time.time() - 3600
    os.utime(guard, (old, old))
    lock = RetrainLock(path)
    lock.acquire()
    assert lock.broken
    lock.release()
    assert not guard.exists()


def test_an_unusable_state_folder_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ConfigError, match="--state-dir"):
        RetrainLock(blocker / "retrain.lock").acquire()


# ---------------------------------------------------------------- verdicts
def test_verdict_status(tmp_path):
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps({"status": "ALERT", "features": {}}))
    assert verdict_status(path) == "alert"
    path.write_text(json.dumps({"overall": {"status": "ok"}}))
    assert verdict_status(path) == "ok"
    path.write_text(json.dumps({"features": {}}))
    with pytest.raises(ConfigError, match="no overall status"):
        verdict_status(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        verdict_status(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        verdict_status(tmp_path / "missing.json")


# ---------------------------------------------------------------- the loop
class Steps:
    """Build and monitor steps that return fixed exit codes and record calls."""

    def __init__(self, build: int = 0, monitor: int | list[int] = 0):
        self.codes = {
            "build": [build],
            "monitor": monitor if isinstance(monitor, list) else [monitor],
        }
        self.calls: list[tuple[str, list[str]]] = []

    def step(self, name: str):
        def run(args: list[str]) -> int:
            self.calls.append((name, args))
            codes = self.codes[name]
            return codes.pop(0) if len(codes) > 1 else codes[0]

        return run

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _plan(tmp_path: Path, **kw) -> RetrainPlan:
    env = {
        "products": str(tmp_path / "products"),
        "tracking_uri": f"sqlite:///{tmp_path / 'no-store' / 'mlflow.db'}",
        "model_name": "m",
        "data_path": "data.csv",
    }
    return RetrainPlan(
        overrides={"data_path": "data.csv"},
        env=env,
        lock_path=tmp_path / "state" / "retrain.lock",
        monitor_args=["monitor", "data.csv"],
        **kw,
    )


def _latest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "products/retrain/latest.json").read_text())


@pytest.mark.parametrize(
    ("build", "monitor", "status", "code", "ran"),
    [
        (0, 0, "ok", EXIT_OK, ["build", "monitor"]),
        (0, 10, "alert", EXIT_MONITOR_ALERT, ["build", "monitor"]),
        (0, 3, "monitor_failed", EXIT_MONITOR_FAILED, ["build", "monitor"]),
        (3, 0, "build_failed", EXIT_BUILD_FAILED, ["build"]),
    ],
)
def test_exit_codes(tmp_path, build, monitor, status, code, ran):
    steps = Steps(build=build, monitor=monitor)
    summary = run_retrain(_plan(tmp_path), steps.step("build"), steps.step("monitor"))
    assert (summary["status"], summary["exit_code"]) == (status, code)
    assert steps.names() == ran
    assert steps.calls[0][1] == ["--env--data_path", "data.csv"]
    latest = _latest(tmp_path)
    assert latest["status"] == status and latest["exit_code"] == code
    assert latest["steps"]["build"]["exit_code"] == build
    assert {"started", "finished", "champion_before", "champion_after"} <= set(latest)
    assert latest["champion_before"] is None and latest["champion_changed"] is False
    assert not (tmp_path / "state" / "retrain.lock").exists()


def test_credentials_in_uris_stay_out_of_the_summary(tmp_path):
    plan = _plan(tmp_path)
    plan.overrides["tracking_uri"] = "https://bot:s3cret@mlflow.example/"
    # (env keeps the store-less SQLite URI: this test reads no registry)
    plan.overrides["data_path"] = "s3://bucket/x.csv"
    steps = Steps()
    run_retrain(plan, steps.step("build"), steps.step("monitor"))
    text = (tmp_path / "products/retrain/latest.json").read_text()
    assert "s3cret" not in text and "https://***@mlflow.example/" in text
    assert "s3://bucket/x.csv" in text
    assert "s3cret" in " ".join(steps.calls[0][1])  # the build still gets it


def test_without_monitor_the_note_is_logged_in_the_summary(tmp_path):
    steps = Steps()
    note = "tasks.monitor does not exist yet"
    summary = run_retrain(_plan(tmp_path, monitor_note=note), steps.step("build"), None)
    assert summary["exit_code"] == EXIT_OK
    assert summary["steps"]["monitor"] == {"skipped": note}


def test_a_held_lock_runs_nothing_and_keeps_latest(tmp_path):
    steps = Steps()
    run_retrain(_plan(tmp_path), steps.step("build"), steps.step("monitor"))
    first = _latest(tmp_path)
    with RetrainLock(tmp_path / "state" / "retrain.lock"):
        summary = run_retrain(
            _plan(tmp_path), steps.step("build"), steps.step("monitor")
        )
    assert summary["status"] == "locked" and summary["exit_code"] == EXIT_LOCKED
    assert summary["lock_holder"]["pid"] == os.getpid()
    assert steps.names() == ["build", "monitor"]  # only the first run's
    assert _latest(tmp_path) == first
    assert Path(summary["summary_path"]).is_file()


@pytest.mark.parametrize(
    ("status", "runs"), [("ok", False), ("warn", False), ("alert", True)]
)
def test_if_alert_retrains_only_on_an_alert_verdict(tmp_path, status, runs):
    verdict = tmp_path / "verdict.json"
    verdict.write_text(json.dumps({"status": status}))
    steps = Steps()
    summary = run_retrain(
        _plan(tmp_path, if_alert=verdict), steps.step("build"), steps.step("monitor")
    )
    assert summary["exit_code"] == EXIT_OK
    assert summary["status"] == ("ok" if runs else "skipped")
    assert ("build" in steps.names()) is runs
    assert status in summary["trigger"]


@pytest.mark.parametrize(
    ("first", "status", "ran"),
    [
        (0, "skipped", ["monitor"]),
        (10, "ok", ["monitor", "build", "monitor"]),
        (3, "monitor_failed", ["monitor"]),
    ],
)
def test_on_alert_runs_the_monitor_first(tmp_path, first, status, ran):
    steps = Steps(monitor=[first, 0])
    summary = run_retrain(
        _plan(tmp_path, on_alert=True), steps.step("build"), steps.step("monitor")
    )
    assert summary["status"] == status
    assert steps.names() == ran


def test_on_alert_without_a_monitor_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="--on-alert"):
        run_retrain(
            _plan(tmp_path, on_alert=True, monitor_note="absent"),
            Steps().step("build"),
            None,
        )
    assert not (tmp_path / "state" / "retrain.lock").exists()  # released
