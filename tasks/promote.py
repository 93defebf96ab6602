"""Move the ``champion`` alias by hand: promote a version, or roll back.

The build moves ``champion`` only through the gate (:mod:`tasks.register`). These
functions are the manual override, for people: every change is recorded so the
alias's history can be audited later, in three places:

- tags on the new champion version: ``champion.set_at``, ``champion.set_by``,
  ``champion.set_reason``, ``champion.set_action`` (``promote`` / ``rollback``),
  ``champion.change_run_id``; plus ``previous_champion`` (promote) or
  ``rolled_back_from`` (rollback);
- tags on the version that lost the alias: ``champion.demoted_at``,
  ``champion.demoted_by``, ``champion.demoted_reason``;
- one MLflow run per change in the build experiment, tagged
  ``nbship.kind=alias-change`` with ``nbship.action``, ``nbship.from_version``,
  ``nbship.to_version``, ``nbship.by``, ``nbship.reason`` and ``nbship.at``
  (:func:`alias_history` lists them), and the registered model's tag
  ``nbship.last_champion_change``.

A rollback does not rewrite the target's ``previous_champion`` tag, so rolling
back twice walks further back in history instead of bouncing between two versions.

A running API picks the change up by polling the alias, or at once when told
(``--reload-url``, a ``POST /reload``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tasks.errors import ModelError
from tasks.register import CHAMPION

log = logging.getLogger(__name__)

ALIAS_CHANGE = "alias-change"


def default_actor() -> str:
    """``USER@HOST`` of this process (``unknown@HOST`` without a user name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def rollback_target(versions: Mapping[str, Mapping[str, str]], current: str) -> str:
    """The version a rollback from ``current`` goes back to.

    Args:
        versions: every registered version (``"3"``) with its tags, READY ones only.
        current: the version holding ``champion`` now.

    Returns:
        ``current``'s ``previous_champion`` tag when that version exists; else the
        highest lower version that was champion once (``promoted`` tag ``true`` or
        a ``champion.set_at`` tag); else the highest lower version.

    Raises:
        ModelError: no such version exists (``current`` is the oldest).
    """
    prev = versions.get(current, {}).get("previous_champion")
    if prev and prev != current and prev in versions:
        return prev
    lower = sorted((v for v in versions if int(v) < int(current)), key=int)
    if not lower:
        raise ModelError(
            f"nothing to roll back to: v{current} is the champion and no older "
            f"version exists (versions: {sorted(versions, key=int)}). Promote a "
            "newer one with `nbship promote VERSION`, or build a new one."
        )
    was_champion = [
        v
        for v in lower
        if versions[v].get("promoted") == "true" or "champion.set_at" in versions[v]
    ]
    return (was_champion or lower)[-1]


def _client(tracking_uri: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient()


def _versions(client, model_name: str) -> dict[str, dict[str, str]]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException as e:
        raise ModelError(
            f"cannot list versions of {model_name!r}: {str(e).splitlines()[0]}"
        ) from e
    return {
        str(mv.version): dict(mv.tags or {})
        for mv in found
        if str(getattr(mv, "status", "READY")).endswith("READY")
    }


def change_champion(
    *,
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    model_name: str,
    version: str,
    action: str,
    reason: str,
    by: str | None = None,
) -> dict[str, Any]:
    """Point ``champion`` at ``version`` and record who, when and why.

    Args:
        tracking_uri, artifact_root, experiment: the MLflow store and the
            experiment that receives the audit run (created if missing).
        model_name: registered model name.
        version: the version to make champion.
        action: ``promote`` or ``rollback`` (recorded).
        reason: why (recorded; required by the CLI for rollbacks).
        by: who (default :func:`default_actor`).

    Returns:
        ``{"model_name", "action", "from_version", "to_version", "by", "at",
        "reason", "run_id", "changed"}``; ``changed`` is False (and nothing is
        recorded) when ``version`` already is the champion.

    Raises:
        ModelError: the model or version does not exist (or is not READY).
    """
    from tasks.register import configure_tracking, current_champion

    client = _client(tracking_uri)
    versions = _versions(client, model_name)
    version = str(version).removeprefix("v")
    if version not in versions:
        raise ModelError(
            f"{model_name!r} has no version {version!r} ready in {tracking_uri}; "
            f"versions: {sorted(versions, key=int) or 'none'} (see `nbship models`)"
        )
    previous = current_champion(model_name)
    old = str(previous.version) if previous is not None else None
    by = by or default_actor()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "model_name": model_name,
        "action": action,
        "from_version": old,
        "to_version": version,
        "by": by,
        "at": at,
        "reason": reason,
        "run_id": None,
        "changed": old != version,
    }
    if old == version:
        log.info(
            "%s v%s already is @%s; nothing changed", model_name, version, CHAMPION
        )
        return record

    import mlflow

    configure_tracking(tracking_uri, artifact_root, experiment)
    run_name = f"{action}-v{old or 'none'}-to-v{version}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(
            {
                "nbship.kind": ALIAS_CHANGE,
                "nbship.action": action,
                "nbship.alias": CHAMPION,
                "nbship.model_name": model_name,
                "nbship.from_version": old or "",
                "nbship.to_version": version,
                "nbship.by": by,
                "nbship.reason": reason,
                "nbship.at": at,
                "mlflow.user": by,
            }
        )
        record["run_id"] = run.info.run_id
    client.set_registered_model_alias(model_name, CHAMPION, version)

    tags = {
        "champion.set_at": at,
        "champion.set_by": by,
        "champion.set_reason": reason,
        "champion.set_action": action,
        "champion.change_run_id": record["run_id"],
    }
    if old is not None:
        tags["previous_champion" if action == "promote" else "rolled_back_from"] = old
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if old is not None:
        for key, value in {
            "champion.demoted_at": at,
            "champion.demoted_by": by,
            "champion.demoted_reason": reason,
        }.items():
            client.set_model_version_tag(model_name, old, key, value)
    client.set_registered_model_tag(
        model_name,
        "nbship.last_champion_change",
        json.dumps(
            {
                k: record[k]
                for k in (
                    "action",
                    "from_version",
                    "to_version",
                    "by",
                    "at",
                    "reason",
                    "run_id",
                )
            }
        ),
    )
    log.info(
        "%s: %s @%s v%s -> v%s by %s (%s)",
        action,
        model_name,
        CHAMPION,
        old,
        version,
        by,
        reason,
    )
    return record


def rollback(
    *,
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    model_name: str,
    reason: str,
    to: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Move ``champion`` back: to ``to``, or to :func:`rollback_target`.

    Raises:
        ModelError: there is no champion, nothing older to roll back to, or ``to``
            does not exist or already is the champion.
    """
    from tasks.register import current_champion

    client = _client(tracking_uri)
    current = current_champion(model_name)
    if current is None:
        raise ModelError(
            f"{model_name!r} has no @{CHAMPION} in {tracking_uri}: nothing to roll "
            "back. Set one with `nbship promote VERSION`."
        )
    cur = str(current.version)
    if to is not None:
        target = str(to).removeprefix("v")
        if target == cur:
            raise ModelError(
                f"v{target} already is @{CHAMPION}; pass another --to VERSION"
            )
    else:
        target = rollback_target(_versions(client, model_name), cur)
    return change_champion(
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        experiment=experiment,
        model_name=model_name,
        version=target,
        action="rollback",
        reason=reason,
        by=by,
    )


def alias_history(
    tracking_uri: str, experiment: str, model_name: str
) -> list[dict[str, str]]:
    """Manual champion changes, newest first (from the audit runs' tags)."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=(
            f"tags.`nbship.kind` = '{ALIAS_CHANGE}' and "
            f"tags.`nbship.model_name` = '{model_name}'"
        ),
        order_by=["attributes.start_time DESC"],
    )
    keys = ("action", "from_version", "to_version", "by", "at", "reason")
    return [
        {
            "run_id": r.info.run_id,
            **{k: r.data.tags.get(f"nbship.{k}", "") for k in keys},
        }
        for r in runs
    ]


def notify_reload(url: str, timeout: float = 60.0) -> str | None:
    """POST ``url`` (an API's ``/reload``; add ``?wait=true`` to return once the
    new model serves); the problem as text, or None when it answered 2xx."""
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            if 200 <= resp.status < 300:
                return None
            return f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


# ---------------------------------------------------------------- CLI handlers
def _env(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.cli import _env_overrides
    from tasks.config import load_env

    return load_env(overrides=_env_overrides(args.set))


def _say(msg: str) -> None:
    """The CLI's output helper: one line on stderr, for people and logs."""
    print(msg, file=sys.stderr, flush=True)


def _report(record: dict[str, Any], reload_url: str | None) -> int:
    if not record["changed"]:
        _say(f"v{record['to_version']} already is @{CHAMPION}; nothing changed")
        return 0
    _say(
        f"{record['action']}: {record['model_name']} @{CHAMPION} "
        f"v{record['from_version'] or '-'} -> v{record['to_version']} "
        f"(by {record['by']}, run {record['run_id']})"
    )
    if reload_url:
        problem = notify_reload(reload_url)
        if problem:
            _say(
                f"warning: the alias moved, but {reload_url} did not reload "
                f"({problem}); the API picks it up when it next polls"
            )
        else:
            _say(f"reloaded: {reload_url}")
    return 0


def cli_promote(args: argparse.Namespace) -> int:
    """``nbship promote VERSION``."""
    env = _env(args)
    record = change_champion(
        tracking_uri=env["tracking_uri"],
        artifact_root=env["artifact_root"],
        experiment=env["experiment"],
        model_name=env["model_name"],
        version=args.version,
        action="promote",
        reason=args.reason,
        by=args.by,
    )
    return _report(record, args.reload_url)


def cli_rollback(args: argparse.Namespace) -> int:
    """``nbship rollback [--to VERSION] --reason TEXT``."""
    env = _env(args)
    record = rollback(
        tracking_uri=env["tracking_uri"],
        artifact_root=env["artifact_root"],
        experiment=env["experiment"],
        model_name=env["model_name"],
        reason=args.reason,
        to=args.to,
        by=args.by,
    )
    return _report(record, args.reload_url)
