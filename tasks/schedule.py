"""Headless, scheduled retraining: one command runs the whole loop unattended.

``nbship retrain`` is what cron, a systemd timer or a CI schedule calls (see
``docs/scheduling.md``). One run:

1. takes the retrain lock (:class:`RetrainLock`), so two runs never overlap;
2. optionally checks a monitoring verdict first (``--if-alert VERDICT.json``, or
   ``--on-alert`` which runs ``nbship monitor`` on the data) and stops there
   when it does not say ``alert``;
3. runs the build (the ``nbship build`` code path, i.e. ``ploomber build``) on the
   latest data (``--data PATH`` becomes ``--env--data_path PATH``): ingest,
   validate, train, gate and promote (or keep) the champion, score, report.
   Ploomber skips what is up to date, so a run on unchanged data runs no task;
4. runs ``nbship monitor DATA`` when that command exists;
5. writes a run summary (JSON) under ``{products}/retrain/`` and exits with one
   of the ``EXIT_*`` codes below.

A failed build never moves the ``champion`` alias: ``register`` is the only task
that moves it and runs after every check and model it depends on, so a build that
stops earlier leaves the alias, and the API serving it, untouched.

Exit codes (also in the summary's ``exit_code``):

=====  =====================================================================
0      done: built (champion promoted or kept), monitor ok/warn or skipped,
       or nothing to do (``--if-alert`` verdict not ``alert``)
2      configuration error (bad option, missing data file, unreadable verdict)
10     built, but monitoring says ``alert`` on the data (same code as
       ``nbship monitor``)
20     the build failed; the champion was left where it was
21     the monitor command failed (bad data or a crash)
75     another run holds the lock (``EX_TEMPFAIL``: try again later)
=====  =====================================================================

Importing this module is cheap (standard library only): it also declares the
CLI subcommands (:func:`add_commands`), and their handlers import what they need.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.errors import ConfigError, NbshipError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MONITOR_ALERT = 10
EXIT_BUILD_FAILED = 20
EXIT_MONITOR_FAILED = 21
EXIT_LOCKED = 75

#: exit code of ``nbship monitor`` when the verdict is ``alert``
MONITOR_ALERT_CODE = 10
#: a lock older than this is stale even when its process looks alive (6 hours)
DEFAULT_LOCK_MAX_AGE_S = 6 * 3600
#: a lock file that cannot be parsed is stale once it is this old: its writer
#: died between creating and filling it (a live writer needs microseconds)
UNREADABLE_LOCK_GRACE_S = 30.0
#: the break guard of a breaker that crashed is removed after this long
BREAK_GUARD_MAX_AGE_S = 60.0


class LockHeldError(NbshipError):
    """Another retrain run holds the lock (exit code 75, ``EX_TEMPFAIL``).

    Attributes:
        holder: the lock file's content (pid, host, started, ...) or ``None`` if it
            could not be read.
        path: the lock file.
    """

    exit_code = EXIT_LOCKED

    def __init__(
        self, message: str, holder: dict | None = None, path: Path | None = None
    ):
        super().__init__(message)
        self.holder = holder
        self.path = path


# ---------------------------------------------------------------- the lock
def _process_start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) from ``/proc``, or None.

    Together with the pid it identifies a process: a pid that was reused by a
    later process has a different start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return _process_state(pid) != "Z"


def read_lock(path: Path) -> dict | None:
    """The lock file's content, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "token" in data else None


def stale_reason(
    holder: dict | None, path: Path, max_age_s: float, now: float | None = None
) -> str | None:
    """Why a lock is stale, or ``None`` when it must be respected.

    Stale when: its process is dead (same host only: a pid on another host cannot
    be checked), its pid now belongs to a different process (start time differs),
    it is older than ``max_age_s``, or its content cannot be read and the file is
    older than :data:`UNREADABLE_LOCK_GRACE_S`.
    """
    now = time.time() if now is None else now
    if holder is None:
        try:
            age = now - Path(path).stat().st_mtime
        except OSError:
            return None  # gone: the caller retries the create
        if age > UNREADABLE_LOCK_GRACE_S:
            return f"unreadable lock file, {age:.0f} s old"
        return None
    age = now - float(holder.get("started_ts", now))
    if age > max_age_s:
        return f"older than the maximum age ({age:.0f} s > {max_age_s:.0f} s)"
    if holder.get("host") == socket.gethostname():
        pid = int(holder.get("pid", -1))
        if not pid_alive(pid):
            return f"process {pid} is not running on this host"
        recorded = holder.get("proc_start")
        if recorded and _process_start_ticks(pid) not in (None, recorded):
            return f"pid {pid} now belongs to another process"
    return None


@dataclass
class RetrainLock:
    """An inter-process lock file that survives crashes: ``with RetrainLock(p):``.

    Acquire: ``os.open(path, O_CREAT | O_EXCL)`` creates the file atomically, so of
    two processes racing for a free lock exactly one succeeds; the winner writes
    ``{"pid", "host", "started", "started_ts", "proc_start", "token", "command"}``.

    Contention: the loser reads the file. A live holder raises
    :class:`LockHeldError`. A stale one (:func:`stale_reason`: holder dead on
    this host, pid reused, older than ``max_age_s``, or unreadable for a while) is
    broken, then the create is retried.

    Breaking safely: two processes may find the same stale lock; if both simply
    deleted it, the slower one could delete the lock the faster one had just
    taken. So a breaker first takes a short-lived guard file
    (``<lock>.break``, also ``O_EXCL``), re-reads the lock under the guard and
    deletes it only if it still holds the very token judged stale; a fresh lock
    has a new token and is left alone. Only guard holders delete lock files and a
    lock can only be created where none exists, so a lock verified under the guard
    cannot be replaced before it is deleted. Release follows the same rule (our
    own token, under the guard), so a run that outlived ``max_age_s`` and had its
    lock broken does not delete its successor's. A guard left by a breaker that
    crashed is removed after :data:`BREAK_GUARD_MAX_AGE_S`.

    Limits: the pid check only works on the host that wrote the lock; on shared
    storage between hosts (or containers sharing a hostname but not a pid
    namespace) only ``max_age_s`` breaks a lock, so set it above the longest run.

    Args:
        path: the lock file (its folder is created).
        max_age_s: a lock older than this is stale even if its process lives.
        command: a description written into the lock, for people reading it.

    Raises:
        LockHeldError: from :meth:`acquire` when a live run holds the lock.
    """

    path: Path
    max_age_s: float = DEFAULT_LOCK_MAX_AGE_S
    command: str = ""
    info: dict | None = field(default=None, init=False)
    broken: list[dict] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def guard(self) -> Path:
        return self.path.with_name(self.path.name + ".break")

    def acquire(self) -> dict:
        """Take the lock or raise :class:`LockHeldError`; returns what it wrote.

        Raises:
            LockHeldError: a live run holds it.
            ConfigError: the lock's folder cannot be created or written.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            probe = self.path.with_name(f".probe-{os.getpid()}")
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise ConfigError(
                f"cannot write the retrain lock in {self.path.parent} "
                f"({e.strerror}); pass --state-dir to a writable folder"
            ) from e
        for _ in range(5):
            now = time.time()
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.fromtimestamp(now, UTC).isoformat(),
                "started_ts": now,
                "proc_start": _process_start_ticks(os.getpid()),
                "token": uuid.uuid4().hex,
                "command": self.command,
            }
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                reason = stale_reason(holder, self.path, self.max_age_s)
                if reason is None:
                    if holder is None and not self.path.exists():
                        continue  # released between our create and our read
                    raise LockHeldError(
                        _held_message(self.path, holder), holder=holder, path=self.path
                    ) from None
                if self._break(holder, reason):
                    self.broken.append({**(holder or {}), "reason": reason})
                else:
                    time.sleep(0.05)  # someone else is breaking it: look again
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.info = info
            return info
        holder = read_lock(self.path)
        raise LockHeldError(
            _held_message(self.path, holder), holder=holder, path=self.path
        )

    def _take_guard(self) -> int | None:
        try:
            return os.open(self.guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                if time.time() - self.guard.stat().st_mtime > BREAK_GUARD_MAX_AGE_S:
                    self.guard.unlink(missing_ok=True)
            except OSError:
                pass
            return None

    def _drop_guard(self, fd: int) -> None:
        os.close(fd)
        self.guard.unlink(missing_ok=True)

    def _break(self, seen: dict | None, reason: str) -> bool:
        """Delete the stale lock ``seen`` if it is still there; True when done."""
        fd = self._take_guard()
        if fd is None:
            return False
        try:
            current = read_lock(self.path)
            same = (current is None and seen is None) or (
                current is not None
                and seen is not None
                and current["token"] == seen["token"]
            )
            if not same:
                return False
            self.path.unlink(missing_ok=True)
            log.warning(
                "broke a stale retrain lock %s (%s): %s",
                self.path,
                reason,
                json.dumps(seen) if seen else "unreadable",
            )
            return True
        finally:
            self._drop_guard(fd)

    def release(self) -> bool:
        """Delete the lock if it is still ours; True when it was."""
        if self.info is None:
            return False
        for _ in range(100):
            fd = self._take_guard()
            if fd is not None:
                break
            time.sleep(0.05)
        else:
            log.warning(
                "could not take %s to release the lock; leaving %s to be "
                "detected as stale",
                self.guard,
                self.path,
            )
            return False
        try:
            current = read_lock(self.path)
            if current is None or current["token"] != self.info["token"]:
                log.warning(
                    "the retrain lock %s was broken while this run held it "
                    "(it ran longer than the maximum age?)",
                    self.path,
                )
                return False
            self.path.unlink()
            return True
        finally:
            self._drop_guard(fd)
            self.info = None

    def __enter__(self) -> RetrainLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _held_message(path: Path, holder: dict | None) -> str:
    if holder is None:
        return f"another retrain run holds {path} (being written); try again later"
    return (
        f"another retrain run holds {path}: pid {holder.get('pid')} on "
        f"{holder.get('host')}, started {holder.get('started')}. Try again later; "
        "if that run is gone, the lock is broken automatically (dead pid on this "
        "host, or older than --lock-max-age)"
    )


# ---------------------------------------------------------------- verdicts
def verdict_status(path: str | Path) -> str:
    """The overall status (``ok``, ``warn`` or ``alert``) of a monitoring verdict.

    Data contract: a JSON object with the overall status under ``status`` or
    ``overall_status``, or ``overall`` (a string, or an object with ``status``).

    Raises:
        ConfigError: the file is missing, not JSON, or has no such field.
    """
    path = Path(path)
    try:
        verdict = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(
            f"verdict {str(path)!r} cannot be read: {e.strerror}; "
            "pass the JSON written by `nbship monitor`"
        ) from e
    except ValueError as e:
        raise ConfigError(f"verdict {str(path)!r} is not JSON ({e})") from e
    status = None
    if isinstance(verdict, dict):
        overall = verdict.get("overall")
        status = (
            verdict.get("status")
            or verdict.get("overall_status")
            or (overall.get("status") if isinstance(overall, dict) else overall)
        )
    if not isinstance(status, str):
        raise ConfigError(
            f"verdict {str(path)!r} has no overall status: expected a `status` "
            "(ok/warn/alert) field"
        )
    return status.strip().lower()


# ---------------------------------------------------------------- the run
@dataclass
class RetrainPlan:
    """What one retrain run does.

    Attributes:
        overrides: env.yaml overrides (``data_path`` included when ``--data``
            was given); passed to ploomber as ``--env--KEY VALUE``.
        env: the resolved parameters (``products``, ``tracking_uri``,
            ``model_name``, ``data_path``, ...) with the overrides applied.
        lock_path: the lock file.
        lock_max_age_s: see :class:`RetrainLock`.
        if_alert: a verdict file: retrain only when it says ``alert``.
        on_alert: run the monitor first; retrain only when it exits with the alert
            code.
        force: rebuild every task (``ploomber build --force``).
        monitor_args: the ``nbship monitor`` arguments, or ``None`` when the
            command is not available (``monitor_note`` says why).
        verdict_path: where the monitor writes its verdict (read into the
            summary).
    """

    overrides: dict[str, str]
    env: dict[str, Any]
    lock_path: Path
    lock_max_age_s: float = DEFAULT_LOCK_MAX_AGE_S
    if_alert: Path | None = None
    on_alert: bool = False
    force: bool = False
    monitor_args: list[str] | None = None
    monitor_note: str = ""
    verdict_path: Path | None = None

    def ploomber_args(self) -> list[str]:
        args = ["--force"] if self.force else []
        for key, value in self.overrides.items():
            args += [f"--env--{key}", str(value)]
        return args


def champion_state(tracking_uri: str, model_name: str) -> dict | None:
    """The ``champion`` version's number, run and main tags, or ``None``.

    A SQLite store that does not exist yet means no champion (it is not created).
    """
    if (
        tracking_uri.startswith("sqlite:///")
        and not Path(tracking_uri.removeprefix("sqlite:///")).exists()
    ):
        return None
    import mlflow

    from tasks.register import current_champion

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        mv = current_champion(model_name)
    except Exception as e:  # an unreachable store must not hide the build result
        log.warning("could not read the champion from %s: %s", tracking_uri, e)
        return {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    if mv is None:
        return None
    tags = dict(mv.tags or {})
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "family": tags.get("family"),
        "test_roc_auc": tags.get("test_roc_auc"),
        "data_sha256": tags.get("lineage.data_sha256"),
    }


def _redact(value: Any) -> Any:
    """``scheme://user:secret@host`` -> ``scheme://***@host`` (summaries are shared)."""
    if isinstance(value, str) and "://" in value and "@" in value.split("/", 3)[2]:
        scheme, rest = value.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _write_json_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def run_retrain(
    plan: RetrainPlan,
    build: Callable[[list[str]], int],
    monitor: Callable[[list[str]], int] | None,
) -> dict[str, Any]:
    """Run one retrain (lock, trigger check, build, monitor) and write its summary.

    Args:
        plan: what to run (see :class:`RetrainPlan`).
        build: runs ``ploomber build ARGS`` and returns its exit code (the CLI
            passes the ``nbship build`` handler).
        monitor: runs ``nbship monitor ARGS`` and returns its exit code, or
            ``None`` when monitoring is not available.

    Returns:
        The summary, also written to ``{products}/retrain/retrain-<UTC time>-<pid>
        .json`` and (for runs that held the lock) ``{products}/retrain/latest.json``:
        ``started``, ``finished``, ``duration_s``, ``status`` (``ok``, ``alert``,
        ``skipped``, ``build_failed``, ``monitor_failed``, ``locked``),
        ``exit_code``, ``host``, ``pid``, ``data_path``, ``overrides``,
        ``trigger``, ``steps`` (``build`` / ``monitor_before`` / ``monitor``:
        ``exit_code``, ``duration_s`` or ``skipped``), ``champion_before``,
        ``champion_after``, ``champion_changed``, ``lock`` (and ``broken_locks``).

    Raises:
        ConfigError: the ``--if-alert`` verdict cannot be read.
    """
    started = _utc_now()
    env = plan.env
    out_dir = Path(env["products"]) / "retrain"
    summary: dict[str, Any] = {
        "started": started.isoformat(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "data_path": env.get("data_path"),
        "overrides": {k: _redact(v) for k, v in plan.overrides.items()},
        "model_name": env.get("model_name"),
        "tracking_uri": _redact(env.get("tracking_uri")),
        "lock": str(plan.lock_path),
        "trigger": "schedule",
        "steps": {},
    }
    name = f"retrain-{started:%Y%m%dT%H%M%SZ}-{os.getpid()}.json"

    def finish(status: str, code: int, *, latest: bool = True) -> dict[str, Any]:
        finished = _utc_now()
        summary.update(
            status=status,
            exit_code=code,
            finished=finished.isoformat(),
            duration_s=round((finished - started).total_seconds(), 2),
        )
        _write_json_atomic(summary, out_dir / name)
        if latest:
            _write_json_atomic(summary, out_dir / "latest.json")
        summary["summary_path"] = str(out_dir / name)
        log.info("retrain %s (exit %d); summary: %s", status, code, out_dir / name)
        return summary

    lock = RetrainLock(
        plan.lock_path,
        plan.lock_max_age_s,
        command="nbship retrain " + " ".join(_redact(a) for a in plan.ploomber_args()),
    )
    try:
        lock.acquire()
    except LockHeldError as e:
        log.error("%s", e)
        summary["lock_holder"] = e.holder
        return finish("locked", EXIT_LOCKED, latest=False)
    try:
        if lock.broken:
            summary["broken_locks"] = lock.broken
        summary["champion_before"] = champion_state(
            env["tracking_uri"], env["model_name"]
        )
        if plan.if_alert is not None:
            status = verdict_status(plan.if_alert)
            summary["trigger"] = f"verdict {plan.if_alert}: {status}"
            if status != "alert":
                log.info(
                    "verdict %s says %r, not alert: nothing to retrain",
                    plan.if_alert,
                    status,
                )
                summary["champion_after"] = summary["champion_before"]
                summary["champion_changed"] = False
                return finish("skipped", EXIT_OK)
        elif plan.on_alert:
            if monitor is None or plan.monitor_args is None:
                raise ConfigError(
                    f"--on-alert needs `nbship monitor`: {plan.monitor_note}"
                )
            code, step = _monitor(plan, monitor)
            summary["steps"]["monitor_before"] = step
            summary["trigger"] = f"monitor before build: exit {code}"
            if code != MONITOR_ALERT_CODE:
                summary["champion_after"] = summary["champion_before"]
                summary["champion_changed"] = False
                if code == 0:
                    log.info("monitor says ok/warn: nothing to retrain")
                    return finish("skipped", EXIT_OK)
                return finish("monitor_failed", EXIT_MONITOR_FAILED)
            log.info("monitor says alert: retraining")

        code, step = _timed(build, plan.ploomber_args())
        summary["steps"]["build"] = step
        summary["champion_after"] = champion_state(
            env["tracking_uri"], env["model_name"]
        )
        summary["champion_changed"] = (summary["champion_before"] or {}).get(
            "version"
        ) != (summary["champion_after"] or {}).get("version")
        if code != 0:
            log.error(
                "build failed (exit %d); the champion stays %s",
                code,
                (summary["champion_after"] or {}).get("version", "unset"),
            )
            summary["steps"]["monitor"] = {"skipped": "the build failed"}
            return finish("build_failed", EXIT_BUILD_FAILED)

        if monitor is None or plan.monitor_args is None:
            log.info("monitoring skipped: %s", plan.monitor_note)
            summary["steps"]["monitor"] = {"skipped": plan.monitor_note}
            return finish("ok", EXIT_OK)
        code, step = _monitor(plan, monitor)
        summary["steps"]["monitor"] = step
        if code == 0:
            return finish("ok", EXIT_OK)
        if code == MONITOR_ALERT_CODE:
            return finish("alert", EXIT_MONITOR_ALERT)
        return finish("monitor_failed", EXIT_MONITOR_FAILED)
    finally:
        lock.release()


def _timed(step: Callable[[list[str]], int], args: list[str]) -> tuple[int, dict]:
    t0 = time.monotonic()
    code = int(step(args) or 0)
    return code, {
        "args": [_redact(a) for a in args],
        "exit_code": code,
        "duration_s": round(time.monotonic() - t0, 2),
    }


def _monitor(
    plan: RetrainPlan, monitor: Callable[[list[str]], int]
) -> tuple[int, dict]:
    """Run the monitor; add the verdict's path and status when it wrote one."""
    t0 = time.time()
    code, step = _timed(monitor, plan.monitor_args or [])
    path = plan.verdict_path
    if path is not None and path.is_file() and path.stat().st_mtime >= t0 - 1:
        step["verdict"] = str(path)
        try:
            step["status"] = verdict_status(path)
        except ConfigError as e:
            step["status"] = f"unreadable: {e}"
    return code, step


# ---------------------------------------------------------------- CLI
def _project_dir() -> Path:
    from tasks.config import find_env_file

    return find_env_file().parent


def _monitor_support() -> tuple[bool, set[str], str]:
    """Whether ``nbship monitor`` exists, its option strings, and a note if not."""
    import importlib.util

    from tasks.cli import build_parser

    if importlib.util.find_spec("tasks.monitor") is None:
        return False, set(), "tasks.monitor does not exist yet"
    parser = build_parser()
    for action in parser._actions:
        if (
            isinstance(action, argparse._SubParsersAction)
            and "monitor" in action.choices
        ):
            return True, set(action.choices["monitor"]._option_string_actions), ""
    return False, set(), "the `nbship monitor` command is not registered"


def _run_streamed(cmd: Sequence[str]) -> int:
    log.info("$ %s", " ".join(cmd))
    return subprocess.run(list(cmd), check=False).returncode


def cmd_retrain(args: argparse.Namespace) -> int:
    """``nbship retrain``: see the module docstring."""
    from tasks.cli import _env_overrides, cmd_build
    from tasks.config import load_env

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    overrides = _env_overrides(args.set)
    if args.data and "://" in args.data:  # a URL: ingest reads it
        overrides["data_path"] = args.data
    elif args.data:
        data = Path(args.data).expanduser().resolve()
        if not data.is_file():
            raise ConfigError(f"--data {args.data!r}: no such file")
        overrides["data_path"] = str(data)
    env = load_env(overrides=overrides)
    state_dir = Path(args.state_dir) if args.state_dir else _project_dir() / ".nbship"

    monitor_args, verdict_path = None, None
    available, options, note = _monitor_support()
    if args.no_monitor:
        available, note = False, "--no-monitor"
    if available:
        monitor_args = ["monitor", str(env["data_path"])]
        if "--out-dir" in options:
            verdict_path = Path(env["products"]) / "monitor" / "verdict.json"
            monitor_args += ["--out-dir", str(verdict_path.parent)]
        if "--set" in options:
            monitor_args += [
                x for k, v in overrides.items() for x in ("--set", f"{k}={v}")
            ]

    def monitor(argv: list[str]) -> int:
        return _run_streamed([sys.executable, "-m", "tasks.cli", *argv])

    def build(argv: list[str]) -> int:
        return cmd_build(argparse.Namespace(ploomber=argv))

    plan = RetrainPlan(
        overrides=overrides,
        env=env,
        lock_path=state_dir / "retrain.lock",
        lock_max_age_s=args.lock_max_age,
        if_alert=Path(args.if_alert) if args.if_alert else None,
        on_alert=args.on_alert,
        force=args.force,
        monitor_args=monitor_args,
        monitor_note=note,
        verdict_path=verdict_path,
    )
    summary = run_retrain(plan, build=build, monitor=monitor if available else None)
    _say(
        f"retrain: {summary['status']} (exit {summary['exit_code']}); "
        f"champion {(summary.get('champion_before') or {}).get('version', '-')} -> "
        f"{(summary.get('champion_after') or {}).get('version', '-')}; "
        f"summary {summary['summary_path']}"
    )
    return int(summary["exit_code"])


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_promote(args: argparse.Namespace) -> int:
    from tasks.promote import cli_promote

    return cli_promote(args)


def cmd_rollback(args: argparse.Namespace) -> int:
    from tasks.promote import cli_rollback

    return cli_rollback(args)


def cmd_export_airflow(args: argparse.Namespace) -> int:
    from tasks.airflow import cli_export_airflow

    return cli_export_airflow(args)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Declare ``retrain``, ``promote``, ``rollback`` and ``export-airflow``."""
    from tasks.cli import add_set_option

    p = sub.add_parser(
        "retrain",
        help="headless retrain: lock, build (gate/promote/score), monitor, summary",
        description="Run the whole loop unattended, for cron, systemd or CI: take "
        "the retrain lock, build on the latest data (the champion moves only if "
        "the candidate passes the gate), monitor, and write a JSON summary under "
        "{products}/retrain/. Exit codes: 0 ok, 2 configuration, 10 monitor alert, "
        "20 build failed (champion unchanged), 21 monitor failed, 75 another run "
        "holds the lock.",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="the latest data (CSV/Parquet file or URL); becomes --env--data_path",
    )
    add_set_option(p)
    p.add_argument(
        "--force", action="store_true", help="rebuild every task, not only what changed"
    )
    trig = p.add_mutually_exclusive_group()
    trig.add_argument(
        "--if-alert",
        metavar="VERDICT.json",
        help="retrain only if this monitoring verdict says alert",
    )
    trig.add_argument(
        "--on-alert",
        action="store_true",
        help="run `nbship monitor` on the data first; retrain only on alert",
    )
    p.add_argument(
        "--no-monitor",
        action="store_true",
        help="do not run `nbship monitor` after the build",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="folder of the lock file (default: .nbship/ in the project)",
    )
    p.add_argument(
        "--lock-max-age",
        type=float,
        default=DEFAULT_LOCK_MAX_AGE_S,
        metavar="SECONDS",
        help="a lock older than this is stale even if "
        f"its process lives (default {DEFAULT_LOCK_MAX_AGE_S})",
    )
    p.set_defaults(func=cmd_retrain)

    by_help = "who made the change (default: USER@HOST)"
    reload_help = (
        "after moving the alias, POST here so a running API swaps "
        "models now, e.g. http://127.0.0.1:8000/reload?wait=true"
    )
    p = sub.add_parser(
        "promote",
        help="move the champion alias to VERSION (recorded in MLflow)",
        description="Point `champion` at VERSION. Who, when and why are recorded as "
        "version tags and as an MLflow run (tag nbship.kind=alias-change).",
    )
    p.add_argument("version", help="registered model version number")
    p.add_argument("--reason", default="manual promotion", help="why (recorded)")
    p.add_argument("--by", help=by_help)
    p.add_argument("--reload-url", help=reload_help)
    add_set_option(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "rollback",
        help="move the champion alias back to the previous version",
        description="Point `champion` back at the version it replaced (its "
        "`previous_champion` tag; else the highest lower version), or at --to "
        "VERSION. Recorded in MLflow with who/when/why.",
    )
    p.add_argument("--to", metavar="VERSION", help="roll back to this version")
    p.add_argument("--reason", required=True, help="why (recorded)")
    p.add_argument("--by", help=by_help)
    p.add_argument("--reload-url", help=reload_help)
    add_set_option(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "export-airflow",
        help="generate an Apache Airflow DAG (one BashOperator per task)",
        description="Write an Airflow 3 DAG file whose tasks run `ploomber task "
        "NAME` in the project folder, with the dependencies of pipeline.yaml.",
    )
    p.add_argument(
        "--out",
        default="deploy/airflow/nbship_dag.py",
        help="output file (default deploy/airflow/nbship_dag.py)",
    )
    p.add_argument("--dag-id", default="nbship", help="Airflow DAG id")
    p.add_argument(
        "--schedule",
        default="0 3 * * *",
        help="cron expression or preset (@daily), or 'none' (default '0 3 * * *')",
    )
    p.add_argument(
        "--project-dir",
        help="the project folder on the Airflow worker (default: this project)",
    )
    p.add_argument(
        "--ploomber",
        help="the ploomber executable on the worker "
        "(default: PROJECT_DIR/.venv/bin/ploomber)",
    )
    p.add_argument(
        "--force-tasks",
        action="store_true",
        help="run every task with --force (default: skip up-to-date "
        "tasks, shown as skipped in Airflow)",
    )
    add_set_option(p, help="an env.yaml override baked into every task command")
    p.set_defaults(func=cmd_export_airflow)
