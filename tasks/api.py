"""Real-time scoring API (FastAPI + Uvicorn) for the registered champion model.

Build the app with :func:`create_app` (``nbship serve`` runs it with Uvicorn).

Endpoints:

* ``POST /predict``: one record (a JSON object) or many (a JSON array); the
  request model is derived from the declared schema, so a bad field is a 422 that
  names the record, the field and the reason. Returns the probability and label of
  every record, the model name and version and a request id.
* ``POST /explain``: per-feature contributions (:mod:`tasks.explain`).
* ``GET /health`` (process alive), ``GET /ready`` (a model is loaded; 503
  otherwise), ``GET /metadata`` (model, lineage, training metrics, schema),
  ``GET /metrics`` (Prometheus text format).
* ``POST /reload``: load the version the alias points to now in the background and
  swap it in atomically; in-flight requests finish on the model they started with,
  and a model that fails to load leaves the old one serving. ``poll_interval``
  does the same on a timer.

Serving details: predictions run in one worker thread that scores every request
waiting at that moment in one ``predict_proba`` call (micro-batching, no added
wait), so throughput grows with concurrency while each row gets exactly the
probability it gets alone. An API key (``X-API-Key``) can be required, request
bodies are size-limited, every request is logged as one JSON line (feature values
only when enabled), and predictions can be appended to Parquet files off the
request path (:class:`PredictionLog`): logging never blocks or fails a request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import keyword
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from tasks.errors import ModelError
from tasks.schema import Column, Schema, schema_to_dict

log = logging.getLogger("nbship.api")

API_KEY_ENV = "NBSHIP_API_KEY"
API_KEY_HEADER = "x-api-key"
# probes stay open so an orchestrator can check the container without the key
OPEN_PATHS = frozenset({"/health", "/ready"})
KNOWN_PATHS = frozenset(
    {
        "/predict",
        "/explain",
        "/health",
        "/ready",
        "/metadata",
        "/metrics",
        "/reload",
        "/docs",
        "/openapi.json",
    }
)
PREDLOG_ROWS = "nbship_prediction_log_rows_total"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class ServeSettings:
    """How the API serves.

    Attributes:
        tracking_uri: MLflow tracking/registry URI.
        model_name: registered model name.
        schema: declared schema (request model and validation).
        alias: registry alias to serve (``champion``).
        model_version: serve this fixed version instead of the alias.
        api_key: require this value in the ``X-API-Key`` header (``None``: open).
        max_body_bytes: larger request bodies get 413.
        max_records: most records in one request (more: 422).
        poll_interval: seconds between alias checks (0: only ``POST /reload``).
        prediction_log_dir: folder for the Parquet prediction log (``None``: off).
        log_features: include feature values in the request log lines.
        batch_max_rows: most rows scored in one micro-batch.
        predict_threads: threads the estimator uses per call (XGBoost/LightGBM
            ``n_jobs``). One is fastest here: a call scores one micro-batch, and
            idle OpenMP threads spinning beside the event loop cost more than
            they save (measured: 14.6 ms vs 32.5 ms per single-row call on two
            busy cores). Thread count does not change the predictions.
    """

    tracking_uri: str
    model_name: str
    schema: Schema
    alias: str = "champion"
    model_version: str | None = None
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    max_records: int = 1000
    poll_interval: float = 0.0
    prediction_log_dir: str | None = None
    log_features: bool = False
    batch_max_rows: int = 2048
    predict_threads: int = 1

    @property
    def model_uri(self) -> str:
        from tasks.score import resolve_model_uri

        return resolve_model_uri(self.model_name, self.alias, self.model_version)


# ---------------------------------------------------------------- request model
def _field_name(name: str) -> str:
    ok = (
        name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
    )
    return name if ok else f"f_{abs(hash(name))}"


def _reject_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    return v


def _column_type(col: Column, missing_tokens: tuple[str, ...]) -> tuple[Any, Any]:
    """(annotation, default) of one feature field."""
    from pydantic import BeforeValidator, Field

    desc = col.description or None
    if col.is_numeric:
        base = int if col.type == "integer" else float
        constraints = Field(ge=col.min, le=col.max, allow_inf_nan=False)
        ann: Any = Annotated[base, constraints, BeforeValidator(_reject_bool)]
    elif col.categories is not None:
        allowed = tuple(col.categories)
        if col.nullable:
            # the schema's missing tokens (e.g. "unknown") mean missing, as in training
            allowed += tuple(t for t in missing_tokens if t not in allowed)
        ann = Literal[allowed]  # type: ignore[valid-type]
    else:
        ann = Annotated[str, Field(max_length=1000)]
    if col.nullable:
        return ann | None, Field(default=None, alias=col.name, description=desc)
    return ann, Field(alias=col.name, description=desc)


def build_record_model(schema: Schema):
    """A pydantic model of one input record, derived from the declared schema.

    Feature columns are fields: integers and floats with the schema's bounds,
    categories restricted to the declared values (plus the missing tokens when
    nullable), nullable columns optional (missing or ``null`` = missing value, as
    in training). The target and dropped columns are accepted and ignored; any
    other field is an error.
    """
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for col in schema.features:
        fields[_field_name(col.name)] = _column_type(col, schema.missing_values)
    for name in (schema.target, *schema.drop):
        fields[_field_name(name)] = (
            Any,
            Field(
                default=None,
                alias=name,
                exclude=True,
                description="accepted and ignored: not a model feature",
            ),
        )
    return create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )


class RequestError(Exception):
    """A client error with its HTTP status and JSON detail."""

    def __init__(self, status: int, detail: Any):
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


class RecordParser:
    """Turn a request body into validated records (dicts keyed by column name)."""

    def __init__(self, schema: Schema, max_records: int):
        from pydantic import Field, TypeAdapter

        self.schema = schema
        self.max_records = max_records
        self.Record = build_record_model(schema)
        self._one = TypeAdapter(self.Record)
        self._many = TypeAdapter(
            Annotated[list[self.Record], Field(min_length=1, max_length=max_records)]
        )
        self._names = {_field_name(c.name): c.name for c in schema.features}

    def openapi_body(self) -> dict[str, Any]:
        """The OpenAPI ``requestBody`` of ``/predict`` and ``/explain``."""
        record = self.Record.model_json_schema(by_alias=True)
        record.pop("title", None)
        return {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {**record, "title": "Record"},
                            {
                                "type": "array",
                                "items": record,
                                "minItems": 1,
                                "maxItems": self.max_records,
                                "title": "Records",
                            },
                        ]
                    }
                }
            },
        }

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """Validated records in request order.

        Raises:
            RequestError: 400 for a body that is not JSON, 422 for anything that
                breaks the schema (detail lists record, field and reason).
        """
        from pydantic import ValidationError

        head = body.lstrip()[:1]
        if head not in (b"{", b"["):
            if not body.strip():
                raise RequestError(400, "empty body: send a JSON object or array")
            try:
                json.loads(body)
            except ValueError as e:
                raise RequestError(400, f"the body is not valid JSON: {e}") from None
            raise RequestError(
                422,
                [
                    {
                        "loc": ["body"],
                        "record": None,
                        "field": None,
                        "msg": (
                            "the body must be a JSON object (one record) or an "
                            "array of objects"
                        ),
                        "type": "body_type",
                    }
                ],
            )
        many = head == b"["
        try:
            if many:
                models = self._many.validate_json(body)
            else:
                models = [self._one.validate_json(body)]
        except ValidationError as e:
            errors = e.errors(include_url=False, include_input=False)
            if any(err["type"] == "json_invalid" for err in errors):
                msg = errors[0].get("msg", "invalid JSON")
                raise RequestError(400, f"the body is not valid JSON: {msg}") from None
            raise RequestError(
                422, [self._detail(err, many) for err in errors[:50]]
            ) from None
        return [m.model_dump(by_alias=True) for m in models]

    def _detail(self, err: dict[str, Any], many: bool) -> dict[str, Any]:
        loc = list(err.get("loc", ()))
        record = loc.pop(0) if many and loc and isinstance(loc[0], int) else None
        if not many:
            record = 0
        fld = None
        if loc and isinstance(loc[0], str):
            fld = self._names.get(loc[0], loc[0])
            # Literal/Optional wrappers add their own path element; keep the field
            loc = [fld]
        msg = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field: not in the declared schema"
        elif err.get("type") == "missing":
            msg = "field required: the schema does not allow it to be missing"
        return {
            "loc": ["body", *([record] if many else []), *loc],
            "record": record,
            "field": fld,
            "msg": msg,
            "type": err.get("type", "value_error"),
        }


# ---------------------------------------------------------------- model state
@dataclass(frozen=True)
class LoadedModel:
    """A model and the facts served with it; replaced as a whole on reload."""

    model: Any
    info: dict[str, Any]
    metrics: dict[str, float]
    features: list[str]
    labels: tuple[str, str]
    loaded_at: str

    @property
    def version(self) -> str:
        return str(self.info["model_version"])

    @property
    def threshold(self) -> float:
        return float(self.info["threshold"])


def load_model(settings: ServeSettings) -> LoadedModel:
    """Load the served model and its training metrics from the registry.

    Raises:
        ModelError: it cannot be found or loaded.
    """
    from tasks.score import load_registered_model

    model, info = load_registered_model(settings.tracking_uri, settings.model_uri)
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    if settings.predict_threads and "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=settings.predict_threads)
    metrics: dict[str, float] = {}
    try:
        import mlflow

        run = mlflow.MlflowClient(tracking_uri=settings.tracking_uri).get_run(
            info["run_id"]
        )
        metrics = dict(run.data.metrics)
    except Exception as e:  # metadata only: the model still serves
        log.warning("no training metrics for run %s: %s", info["run_id"], e)
    schema = settings.schema
    return LoadedModel(
        model=model,
        info=info,
        metrics=metrics,
        features=schema.feature_names,
        labels=schema.labels,
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def resolve_target_version(settings: ServeSettings) -> str:
    """The version the served reference points to now.

    Raises:
        ModelError: the model or alias does not exist.
    """
    if settings.model_version is not None:
        return str(settings.model_version)
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
    )
    try:
        mv = client.get_model_version_by_alias(settings.model_name, settings.alias)
    except Exception as e:
        raise ModelError(
            f"cannot resolve models:/{settings.model_name}@{settings.alias} in "
            f"{settings.tracking_uri!r}: {str(e).splitlines()[0] if str(e) else e}"
        ) from e
    return str(mv.version)


class ModelManager:
    """Holds the served model; loads replacements in the background.

    ``current`` is swapped by a single assignment, so a request that read it keeps
    a consistent model for its whole life.
    """

    def __init__(self, settings: ServeSettings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self.last_error: str | None = "loading"
        self.last_attempt: str | None = None
        self._failed_version: str | None = None
        self._task: asyncio.Task | None = None

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    def reload(self, force: bool = False) -> tuple[asyncio.Task, bool]:
        """Start a background reload unless one runs; (task, started_now)."""
        if self.loading:
            return self._task, False  # type: ignore[return-value]
        self._task = asyncio.get_running_loop().create_task(self._reload(force))
        return self._task, True

    async def _reload(self, force: bool) -> dict[str, Any]:
        self.last_attempt = datetime.now(UTC).isoformat(timespec="seconds")
        previous = self.current.version if self.current else None
        target = None
        try:
            target = await asyncio.to_thread(resolve_target_version, self.settings)
            if not force and target == previous:
                return {"status": "unchanged", "model_version": previous}
            if not force and target == self._failed_version:
                return {
                    "status": "failed",
                    "model_version": previous,
                    "detail": self.last_error,
                }
            new = await asyncio.to_thread(self._load_and_check)
        except Exception as e:  # any failure keeps the old model serving
            message = (
                str(e) if isinstance(e, ModelError) else f"{type(e).__name__}: {e}"
            )
            self.last_error = message
            self._failed_version = target
            self.metrics.inc("nbship_model_reloads_total", {"result": "failed"})
            log.error(
                "model load failed; %s",
                f"still serving version {previous}"
                if previous
                else "no model to serve",
                extra={
                    "fields": {
                        "event": "model_load_failed",
                        "error": message,
                        "serving_version": previous,
                    }
                },
            )
            return {"status": "failed", "model_version": previous, "detail": message}
        self.current = new
        self.last_error = None
        self._failed_version = None
        self.metrics.inc("nbship_model_reloads_total", {"result": "swapped"})
        self.metrics.set_model(new)
        log.info(
            "serving %s version %s",
            new.info["model_name"],
            new.version,
            extra={
                "fields": {
                    "event": "model_swapped",
                    "model_version": new.version,
                    "previous_version": previous,
                }
            },
        )
        return {
            "status": "swapped",
            "model_version": new.version,
            "previous_version": previous,
        }

    def _load_and_check(self) -> LoadedModel:
        new = load_model(self.settings)
        # refuse a model that cannot score a valid row of the schema
        probe = pd.DataFrame(
            [_example_record(self.settings.schema)], columns=new.features
        )
        proba = new.model.predict_proba(probe)
        if proba.shape != (1, 2) or not np.isfinite(proba).all():
            raise ModelError(
                f"version {new.version} returned {proba!r} for a valid row; not served"
            )
        return new

    async def poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.loading:
                task, _ = self.reload()
                await asyncio.shield(task)


def _example_record(schema: Schema) -> dict[str, Any]:
    """A valid record of the schema (a value within bounds, the first category)."""
    rec: dict[str, Any] = {}
    for col in schema.features:
        if col.is_numeric:
            value = col.min if col.min is not None else (col.max or 0)
            rec[col.name] = int(value) if col.type == "integer" else float(value)
        elif col.categories:
            rec[col.name] = col.categories[0]
        else:
            rec[col.name] = "x"
    return rec


# ---------------------------------------------------------------- micro-batching
class PredictionBatcher:
    """Scores requests in one worker thread, batching those that wait together.

    The worker takes everything queued when it becomes free (up to ``max_rows``)
    and calls ``predict_proba`` once per model; no request waits for a batch to
    fill. If a batch fails, its requests are retried one by one so only the
    failing one gets the error.
    """

    def __init__(self, metrics: Metrics, max_rows: int = 2048):
        self.metrics = metrics
        self.max_rows = max_rows
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="nbship-predict", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    async def predict(self, loaded: LoadedModel, records: list[dict]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((loaded, records, loop, fut))
        return await fut

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            items, rows = [item], len(item[1])
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
                rows += len(nxt[1])
            groups: dict[int, list] = {}
            for it in items:
                groups.setdefault(id(it[0]), []).append(it)
            for group in groups.values():
                self._score(group)

    def _score(self, group: list) -> None:
        loaded = group[0][0]
        try:
            records = [r for it in group for r in it[1]]
            frame = pd.DataFrame(records, columns=loaded.features)
            proba = loaded.model.predict_proba(frame)[:, 1]
            self.metrics.observe("nbship_predict_batch_rows", {}, len(records))
        except Exception as e:
            if len(group) > 1:
                for it in group:
                    self._score([it])
                return
            _settle(group[0][2], group[0][3], error=e)
            return
        start = 0
        for _, recs, loop, fut in group:
            _settle(loop, fut, value=proba[start : start + len(recs)])
            start += len(recs)


def _settle(loop, fut, value=None, error: BaseException | None = None) -> None:
    def done() -> None:
        if fut.done():  # the client went away
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    try:
        loop.call_soon_threadsafe(done)
    except RuntimeError:  # loop closed at shutdown
        pass


# ---------------------------------------------------------------- prediction log
class PredictionLog:
    """Append predictions to Parquet files from a background thread.

    Layout: ``DIR/date=YYYY-MM-DD/predictions-HHMMSS-<id>.parquet`` (each file
    written under a temporary name, then renamed: readers never see a partial
    file). Columns: ``request_id``, ``ts`` (UTC), ``model_name``,
    ``model_version``, ``record`` (position in the request), ``probability``,
    ``label``, then every feature (numbers as float64, categories as text, missing
    as null).

    :meth:`submit` never blocks: when the queue is full the rows are dropped and
    counted (``nbship_prediction_log_rows_total{result="dropped"}``); write errors
    are logged and counted, never raised.
    """

    def __init__(
        self,
        folder: str | Path,
        schema: Schema,
        metrics: Metrics,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        max_queue: int = 10_000,
    ):
        self.folder = Path(folder)
        self.schema = schema
        self.metrics = metrics
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(
            target=self._run, name="nbship-predlog", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._queue.put(None, timeout=5)
        except queue.Full:
            pass
        self._thread.join(timeout=15)

    def submit(
        self,
        request_id: str,
        loaded: LoadedModel,
        records: list[dict],
        proba: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        item = (
            request_id,
            time.time(),
            loaded.info["model_name"],
            loaded.version,
            records,
            proba,
            labels,
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.metrics.inc(
                "nbship_prediction_log_rows_total", {"result": "dropped"}, len(records)
            )

    def _run(self) -> None:
        pending: list = []
        rows = 0
        last = time.monotonic()
        while True:
            timeout = max(0.05, self.flush_seconds - (time.monotonic() - last))
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = ""
            if item is None:
                self._flush(pending)
                return
            if item:
                pending.append(item)
                rows += len(item[4])
            if pending and (
                rows >= self.flush_rows or time.monotonic() - last >= self.flush_seconds
            ):
                self._flush(pending)
                pending, rows, last = [], 0, time.monotonic()
            elif not pending:
                last = time.monotonic()

    def _flush(self, pending: list) -> None:
        if not pending:
            return
        n = sum(len(p[4]) for p in pending)
        try:
            self._write(pending)
            self.metrics.inc(PREDLOG_ROWS, {"result": "written"}, n)
        except Exception as e:  # never let logging take the service down
            self.metrics.inc(PREDLOG_ROWS, {"result": "failed"}, n)
            log.error(
                "prediction log write failed: %s: %s",
                type(e).__name__,
                e,
                extra={"fields": {"event": "prediction_log_failed"}},
            )

    def _write(self, pending: list) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list] = {
            k: []
            for k in (
                "request_id",
                "ts",
                "model_name",
                "model_version",
                "record",
                "probability",
                "label",
            )
        }
        feats: dict[str, list] = {c.name: [] for c in self.schema.features}
        for rid, ts, name, version, records, proba, labels in pending:
            stamp = datetime.fromtimestamp(ts, UTC)
            for i, rec in enumerate(records):
                cols["request_id"].append(rid)
                cols["ts"].append(stamp)
                cols["model_name"].append(name)
                cols["model_version"].append(version)
                cols["record"].append(i)
                cols["probability"].append(float(proba[i]))
                cols["label"].append(str(labels[i]))
                for c in feats:
                    feats[c].append(rec.get(c))
        fields = [
            ("request_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("record", pa.int32()),
            ("probability", pa.float64()),
            ("label", pa.string()),
        ]
        arrays = [pa.array(cols[k], type=t) for k, t in fields]
        for col in self.schema.features:
            t = pa.float64() if col.is_numeric else pa.string()
            values = feats[col.name]
            if col.is_numeric:
                values = [None if v is None else float(v) for v in values]
            fields.append((col.name, t))
            arrays.append(pa.array(values, type=t))
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        now = datetime.now(UTC)
        folder = self.folder / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"predictions-{now:%H%M%S}-{uuid.uuid4().hex[:8]}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, folder / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


# ---------------------------------------------------------------- metrics
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

_HELP = {
    "nbship_http_requests_total": (
        "counter",
        "HTTP requests by method, path and status",
    ),
    "nbship_http_errors_total": (
        "counter",
        "HTTP requests answered with an error status, by path and kind (client/server)",
    ),
    "nbship_http_request_duration_seconds": ("histogram", "request latency"),
    "nbship_predictions_total": ("counter", "predicted records by label"),
    "nbship_prediction_score": ("histogram", "predicted positive-class probability"),
    "nbship_predict_batch_rows": (
        "histogram",
        "rows per predict_proba call (micro-batch size)",
    ),
    "nbship_model_reloads_total": ("counter", "model loads by result"),
    "nbship_prediction_log_rows_total": ("counter", "prediction log rows by result"),
    "nbship_model_loaded": ("gauge", "1 when a model is loaded"),
    "nbship_model_info": ("gauge", "the served model (labels), value 1"),
}
_BUCKETS = {
    "nbship_http_request_duration_seconds": LATENCY_BUCKETS,
    "nbship_prediction_score": SCORE_BUCKETS,
    "nbship_predict_batch_rows": ROW_BUCKETS,
}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'  # noqa: E501
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


class Metrics:
    """Counters, gauges and histograms rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple, float]] = {}
        self._hist: dict[str, dict[tuple, list]] = {}
        self._info: dict[str, str] | None = None

    def inc(self, name: str, labels: dict[str, str], value: float = 1.0) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def observe(self, name: str, labels: dict[str, str], value: float) -> None:
        self.observe_many(name, labels, [value])

    def observe_many(self, name: str, labels: dict[str, str], values) -> None:
        bounds = _BUCKETS[name]
        key = tuple(sorted(labels.items()))
        counts = np.searchsorted(bounds, np.asarray(values, dtype=float), side="left")
        with self._lock:
            series = self._hist.setdefault(name, {})
            h = series.setdefault(key, [[0] * (len(bounds) + 1), 0.0, 0])
            for i in counts:
                h[0][int(i)] += 1
            h[1] += float(np.sum(values))
            h[2] += len(counts)

    def set_model(self, loaded: LoadedModel | None) -> None:
        with self._lock:
            self._info = (
                None
                if loaded is None
                else {
                    "model_name": loaded.info["model_name"],
                    "model_version": loaded.version,
                    "run_id": loaded.info.get("run_id") or "",
                }
            )

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in _HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                if name == "nbship_model_loaded":
                    lines.append(f"{name} {1 if self._info else 0}")
                elif name == "nbship_model_info":
                    if self._info:
                        lines.append(f"{name}{_labels(self._info)} 1")
                elif kind == "histogram":
                    bounds = _BUCKETS[name]
                    for key, (counts, total, n) in sorted(
                        self._hist.get(name, {}).items()
                    ):
                        labels = dict(key)
                        running = 0
                        for bound, c in zip(bounds, counts, strict=False):
                            running += c
                            lines.append(
                                f"{name}_bucket"
                                f"{_labels({**labels, 'le': repr(bound)})} "
                                f"{running}"
                            )
                        lines.append(
                            f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {n}"
                        )
                        lines.append(f"{name}_sum{_labels(labels)} {total!r}")
                        lines.append(f"{name}_count{_labels(labels)} {n}")
                else:
                    for key, value in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_labels(dict(key))} {value:g}")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- ASGI middleware
ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


async def _send_json(
    send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ObserveMiddleware:
    """Request id, one JSON log line and the HTTP metrics for every request; a
    JSON 500 (never a traceback) for an unexpected error."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_features: bool):
        self.app = app
        self.metrics = metrics
        self.log_features = log_features

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                value = v.decode("latin-1")
                rid = value if _REQUEST_ID.match(value) else None
        rid = rid or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = {"code": 500, "started": False}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", rid.encode()),
                    ],
                }
            await send(message)

        error = None
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as e:  # the last line of defence: answer, log, count
            error = e
            if not status["started"]:
                status["code"] = 500
                await _send_json(
                    send,
                    500,
                    {"detail": "internal error; see the server log", "request_id": rid},
                    [(b"x-request-id", rid.encode())],
                )
        self._record(scope, state, rid, status["code"], start, error)

    def _record(self, scope, state, rid, code, start, error) -> None:
        elapsed = time.perf_counter() - start
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        method = scope["method"]
        m = self.metrics
        m.inc(
            "nbship_http_requests_total",
            {"method": method, "path": path, "status": str(code)},
        )
        m.observe("nbship_http_request_duration_seconds", {"path": path}, elapsed)
        if code >= 400:
            m.inc(
                "nbship_http_errors_total",
                {"path": path, "kind": "server" if code >= 500 else "client"},
            )
        fields = {
            "request_id": rid,
            "method": method,
            "path": scope["path"],
            "status": code,
            "duration_ms": round(elapsed * 1000, 3),
        }
        for key in ("records", "model_version", "error"):
            if key in state:
                fields[key] = state[key]
        if self.log_features and "features" in state:
            fields["features"] = state["features"]
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
            log.error("request failed", exc_info=error, extra={"fields": fields})
        else:
            log.info("request", extra={"fields": fields})


class AuthMiddleware:
    """Require the API key in ``X-API-Key`` (probes excepted)."""

    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = b""
            for k, v in scope.get("headers", ()):
                if k == API_KEY_HEADER.encode():
                    given = v
            if not hmac.compare_digest(given, self.key):
                what = "invalid" if given else "missing"
                await _send_json(
                    send,
                    401,
                    {"detail": f"{what} API key: send it in the X-API-Key header"},
                    [(b"www-authenticate", b"ApiKey")],
                )
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        too_big = {
            "detail": f"request body over the limit of {self.limit} bytes; "
            "send fewer records per request"
        }
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    await _send_json(send, 400, {"detail": "bad Content-Length"})
                    return
                if declared > self.limit:
                    await _send_json(send, 413, too_big)
                    return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _send_json(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ---------------------------------------------------------------- the app
def create_app(settings: ServeSettings):
    """The FastAPI application serving ``settings.model_uri``.

    The model loads in the background when the app starts: until it is loaded
    ``/ready``, ``/predict``, ``/explain`` and ``/metadata`` answer 503 (with the
    load error when there is one) and ``/health`` answers 200.
    """
    from contextlib import asynccontextmanager

    schema = settings.schema
    parser = RecordParser(schema, settings.max_records)
    metrics = Metrics()
    manager = ModelManager(settings, metrics)
    batcher = PredictionBatcher(metrics, settings.batch_max_rows)
    predlog = (
        PredictionLog(settings.prediction_log_dir, schema, metrics)
        if settings.prediction_log_dir
        else None
    )
    started = time.time()

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        if predlog is not None:
            predlog.start()
        manager.reload(force=True)
        poller = (
            asyncio.create_task(manager.poll(settings.poll_interval))
            if settings.poll_interval > 0
            else None
        )
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
            batcher.stop()
            if predlog is not None:
                predlog.stop()

    app = FastAPI(
        title="nbship scoring API",
        version="1",
        description=f"Scores records with `{settings.model_uri}`. Request fields "
        "are the declared schema's feature columns.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    app.state.metrics = metrics

    def _json(status: int, payload: Any, headers: dict | None = None) -> Response:
        return Response(
            json.dumps(payload),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    def _no_model() -> Response:
        reason = manager.last_error or "no model loaded"
        return _json(
            503, {"detail": f"no model loaded: {reason}"}, {"Retry-After": "5"}
        )

    async def _records(request: Request) -> list[dict]:
        records = parser.parse(await request.body())
        request.state.records = len(records)
        if settings.log_features:
            request.state.features = records
        return records

    async def _model_and_records(request: Request):
        """(model, records), or the error response when either is missing."""
        loaded = manager.current
        if loaded is None:
            return None, _no_model()
        try:
            records = await _records(request)
        except RequestError as e:
            return None, _json(e.status, {"detail": e.detail})
        request.state.model_version = loaded.version
        return loaded, records

    body_doc = {"requestBody": parser.openapi_body()}

    @app.post("/predict", openapi_extra=body_doc, summary="score records")
    async def predict(request: Request) -> Response:
        """Probability and label for one record (object) or many (array)."""
        loaded, records = await _model_and_records(request)
        if loaded is None:
            return records
        proba = await batcher.predict(loaded, records)
        neg, pos = loaded.labels
        labels = np.where(proba >= loaded.threshold, pos, neg)
        rid = request.state.request_id
        n_pos = int((labels == pos).sum())
        metrics.inc("nbship_predictions_total", {"label": pos}, n_pos)
        metrics.inc("nbship_predictions_total", {"label": neg}, len(labels) - n_pos)
        metrics.observe_many("nbship_prediction_score", {}, proba)
        if predlog is not None:
            predlog.submit(rid, loaded, records, proba, labels)
        return _json(
            200,
            {
                "request_id": rid,
                "model_name": loaded.info["model_name"],
                "model_version": loaded.version,
                "threshold": loaded.threshold,
                "predictions": [
                    {"probability": float(p), "label": str(lab)}
                    for p, lab in zip(proba, labels, strict=True)
                ],
            },
        )

    @app.post("/explain", openapi_extra=body_doc, summary="explain records")
    async def explain(request: Request, aggregate: bool = True) -> Response:
        """Per-feature contributions (log-odds) that add up with the base value to
        the raw score; ``aggregate=false`` gives one-hot columns separately."""
        from tasks.explain import explain_frame

        loaded, records = await _model_and_records(request)
        if loaded is None:
            return records
        frame = pd.DataFrame(records, columns=loaded.features)
        try:
            ex = await asyncio.to_thread(explain_frame, loaded.model, frame, aggregate)
        except ModelError as e:
            return _json(501, {"detail": str(e)})
        neg, pos = loaded.labels
        out = []
        for i in range(len(frame)):
            p = float(ex.probability.iloc[i])
            out.append(
                {
                    "probability": p,
                    "label": pos if p >= loaded.threshold else neg,
                    "raw_score": float(ex.raw_score.iloc[i]),
                    "base_value": float(ex.base_value.iloc[i]),
                    "contributions": {
                        str(k): float(v) for k, v in ex.contributions.iloc[i].items()
                    },
                }
            )
        return _json(
            200,
            {
                "request_id": request.state.request_id,
                "model_name": loaded.info["model_name"],
                "model_version": loaded.version,
                "family": ex.family,
                "units": "log-odds",
                "explanations": out,
            },
        )

    @app.get("/health", summary="process alive")
    async def health() -> Response:
        return _json(200, {"status": "ok", "uptime_s": round(time.time() - started, 1)})

    @app.get("/ready", summary="model loaded")
    async def ready() -> Response:
        loaded = manager.current
        if loaded is None:
            return _json(
                503, {"ready": False, "reason": manager.last_error or "no model loaded"}
            )
        return _json(
            200,
            {
                "ready": True,
                "model_name": loaded.info["model_name"],
                "model_version": loaded.version,
            },
        )

    @app.get("/metadata", summary="served model, lineage, metrics and schema")
    async def metadata() -> Response:
        loaded = manager.current
        if loaded is None:
            return _no_model()
        tags = loaded.info.get("tags", {})
        return _json(
            200,
            {
                "model_name": loaded.info["model_name"],
                "model_version": loaded.version,
                "alias": None if settings.model_version else settings.alias,
                "model_uri": loaded.info.get("model_uri"),
                "run_id": loaded.info.get("run_id"),
                "threshold": loaded.threshold,
                "family": tags.get("family"),
                "loaded_at": loaded.loaded_at,
                "training_metrics": loaded.metrics,
                "lineage": {
                    k.removeprefix("lineage."): v
                    for k, v in tags.items()
                    if k.startswith("lineage.")
                },
                "tags": {k: v for k, v in tags.items() if not k.startswith("lineage.")},
                "schema": schema_to_dict(schema),
                "reload": {
                    "in_progress": manager.loading,
                    "last_error": manager.last_error,
                    "last_attempt": manager.last_attempt,
                    "poll_interval_s": settings.poll_interval,
                },
            },
        )

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return PlainTextResponse(
            metrics.render(), media_type="text/plain; version=0.0.4"
        )

    @app.post("/reload", summary="load the model the alias points to now")
    async def reload(wait: bool = False, force: bool = False) -> Response:
        """Start loading the alias's current version in the background (202);
        ``wait=true`` answers when done: 200 swapped/unchanged, 502 failed (the
        old model keeps serving)."""
        task, started_now = manager.reload(force=force)
        if not wait:
            return _json(
                202,
                {
                    "status": "started" if started_now else "in progress",
                    "serving_version": manager.current.version
                    if manager.current
                    else None,
                },
            )
        result = await asyncio.shield(task)
        return _json(502 if result["status"] == "failed" else 200, result)

    # outermost first: observe -> auth -> body limit -> routes
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(AuthMiddleware, api_key=settings.api_key)
    app.add_middleware(
        ObserveMiddleware, metrics=metrics, log_features=settings.log_features
    )
    return app


# ---------------------------------------------------------------- running it
class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the API and Uvicorn (called by ``nbship serve``)."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("nbship", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def serve(
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "INFO",
) -> None:
    """Run the API with Uvicorn until interrupted (one process, one event loop)."""
    import uvicorn

    configure_logging(log_level)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: reachable from other machines%s",
            host,
            "" if settings.api_key else f" without an API key (set {API_KEY_ENV})",
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        log_level=log_level.lower(),
    )
