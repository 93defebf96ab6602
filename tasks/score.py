"""Score: apply a registered model to a table, the same way everywhere.

* :func:`load_registered_model` loads ``models:/NAME@ALIAS`` or a version;
* :func:`score_frame` scores an in-memory table;
* :func:`score_file` streams a CSV or Parquet file of any size through the model in
  chunks (pyarrow readers, bounded memory), validates every chunk with the declared
  schema (:func:`tasks.validate.find_row_errors`), writes the scores to Parquet and
  the invalid rows, with their reasons, to a rejects file. ``nbship score`` and the
  pipeline's ``score`` stage both call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.errors import DataError, DataValidationError, ModelError
from tasks.schema import Schema

DEFAULT_CHUNK_SIZE = 100_000
# the scores file's columns, in order (score_frame's output)
SCORE_COLUMNS = ("row_id", "score", "label", "model_version")


def resolve_model_uri(
    model_name: str, alias: str | None = "champion", version: str | int | None = None
) -> str:
    """``models:/NAME/VERSION`` when a version is given, else ``models:/NAME@ALIAS``."""
    if version is not None:
        return f"models:/{model_name}/{version}"
    return f"models:/{model_name}@{alias}"


def load_registered_model(tracking_uri: str, model_uri: str) -> tuple[Any, dict]:
    """Load a registered model's scikit-learn pipeline and its registry facts.

    An alias (``models:/NAME@ALIAS``) is resolved to its version first and that
    version is loaded, so the model and the facts always belong together even when
    the alias moves meanwhile.

    Returns:
        (model, info) where info holds ``model_name``, ``model_version``,
        ``run_id``, ``threshold``, the version's ``tags``, ``alias`` (or ``None``)
        and ``model_uri`` (the version URI that was loaded).

    Raises:
        ModelError: the model, version or alias does not exist or cannot load.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    ref = model_uri.removeprefix("models:/")
    alias = None
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = ref.split("/", 1)
            mv = client.get_model_version(name, version)
        version_uri = f"models:/{name}/{mv.version}"
        model = mlflow.sklearn.load_model(version_uri)
    except Exception as e:  # registry, artifact store and unpickling errors alike
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelError(
            f"cannot load {model_uri!r} from {tracking_uri!r}: "
            f"{type(e).__name__}: {first}. Run `make build` to train and register "
            "one, or check the version and alias with `nbship models`."
        ) from e
    tags = dict(mv.tags or {})
    info = {
        "model_name": name,
        "model_version": str(mv.version),
        "run_id": mv.run_id,
        "threshold": float(tags.get("threshold", 0.5)),
        "tags": tags,
        "alias": alias,
        "model_uri": version_uri,
    }
    return model, info


def score_frame(
    model,
    df: pd.DataFrame,
    schema: Schema,
    threshold: float,
    model_version: str,
    row_ids: pd.Series | None = None,
) -> pd.DataFrame:
    """Probabilities and labels for the rows of ``df``.

    Args:
        model: fitted pipeline (preprocessing + estimator).
        df: rows with the schema's feature columns (other columns are ignored).
        schema: declared schema.
        threshold: label is positive when the probability is at least this.
        model_version: written on every row.
        row_ids: identifiers to keep (default: 0..n-1).

    Returns:
        DataFrame with ``row_id``, ``score``, ``label`` (the schema's labels) and
        ``model_version``.
    """
    proba = model.predict_proba(df[schema.feature_names])[:, 1]
    neg, pos = schema.labels
    return pd.DataFrame(
        {
            "row_id": np.arange(len(df)) if row_ids is None else np.asarray(row_ids),
            "score": proba,
            "label": np.where(proba >= threshold, pos, neg),
            "model_version": str(model_version),
        }
    )


# ---------------------------------------------------------------- batch (files)
@dataclass
class BatchResult:
    """What :func:`score_file` did.

    Attributes:
        rows: input rows read.
        scored: rows written to the scores file.
        rejected: rows written to the rejects file (invalid under the schema).
        chunks: chunks processed.
        seconds: wall time.
        out: the scores file.
        rejects: the rejects file, or ``None`` when none was asked for.
        reasons: count of rejected rows per reason (first 20 distinct reasons).
    """

    rows: int = 0
    scored: int = 0
    rejected: int = 0
    chunks: int = 0
    seconds: float = 0.0
    out: Path | None = None
    rejects: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)


def default_rejects_path(out: str | Path) -> Path:
    """``scores.parquet`` -> ``scores.rejects.parquet`` (same folder)."""
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.rejects.parquet")


def _rechunk(batches: Iterable, size: int, schema) -> Iterator:
    """Regroup pyarrow record batches into tables of exactly ``size`` rows."""
    import pyarrow as pa

    buf: list = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        buf.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(buf, schema=schema)
            yield table.slice(0, size)
            rest = table.slice(size)
            buf, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(buf, schema=schema)


def _csv_header(path: Path, sep: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with pa.input_stream(str(path), compression="detect") as f:
            first = f.read(1 << 16).decode("utf-8", errors="replace")
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{str(path)!r} could not be read: {e}") from e
    line = first.splitlines()[0] if first else ""
    if not line:
        raise DataError(f"data file {str(path)!r} is empty (no header line)")
    try:
        reader = pacsv.open_csv(
            pa.BufferReader(line.encode() + b"\n"),
            parse_options=pacsv.ParseOptions(delimiter=sep),
        )
    except pa.ArrowException as e:
        raise DataError(f"{str(path)!r}: cannot parse the CSV header: {e}") from e
    return list(reader.schema.names)


def iter_table_chunks(
    path: str | Path,
    columns: list[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    csv_sep: str = ",",
) -> Iterator[pd.DataFrame]:
    """Stream ``columns`` of a CSV or Parquet file as DataFrames of ``chunk_size``
    rows (the last one shorter), never holding the whole file in memory.

    Parquet columns keep their types; CSV columns are read as text (the schema's
    validation and the model's coercion parse them, so a bad cell rejects one row
    instead of failing the file). Empty cells and the usual NA spellings (``NA``,
    ``null``, ``NaN``...) are missing, as in :func:`tasks.io.read_table`.

    Raises:
        DataError: the file is missing, empty, of an unknown format, unreadable,
            or lacks some of ``columns`` (the message names them).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from tasks.io import table_format

    path = Path(path)
    if chunk_size < 1:
        raise DataError(f"chunk size must be at least 1, got {chunk_size}")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty (0 bytes)")
    fmt = table_format(path)
    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{str(path)!r} could not be read as parquet: {e}") from e
        names = pf.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(
                f"{str(path)!r} lacks the feature column(s) {missing}; columns "
                f"found: {names[:20]}"
            )
        schema = pa.schema([pf.schema_arrow.field(c) for c in columns])
        batches = pf.iter_batches(batch_size=chunk_size, columns=columns)
    else:
        names = _csv_header(path, csv_sep)
        missing = [c for c in columns if c not in names]
        if missing:
            hint = ""
            if len(names) == 1:
                other = [s for s in (";", ",", "\t", "|") if s in names[0]]
                if other:
                    hint = f"; it looks separated by {other[0]!r}, not {csv_sep!r}"
            raise DataError(
                f"{str(path)!r} lacks the feature column(s) {missing}; columns "
                f"found: {names[:20]}{hint}"
            )
        schema = pa.schema([(c, pa.string()) for c in columns])
        try:
            reader = pacsv.open_csv(
                str(path),
                read_options=pacsv.ReadOptions(block_size=4 << 20),
                parse_options=pacsv.ParseOptions(delimiter=csv_sep),
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=True,
                ),
            )
        except pa.ArrowException as e:
            raise DataError(f"{str(path)!r} could not be read as csv: {e}") from e
        batches = reader
    try:
        for table in _rechunk(batches, chunk_size, schema):
            yield table.to_pandas()
    except pa.ArrowException as e:
        raise DataError(f"{str(path)!r} could not be read: {e}") from e


def score_chunk(
    model,
    chunk: pd.DataFrame,
    schema: Schema,
    threshold: float,
    model_version: str,
    first_row: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate and score one chunk.

    Args:
        model: fitted pipeline (preprocessing + estimator).
        chunk: rows with the schema's feature columns.
        schema: declared schema; every feature column is checked with
            :func:`tasks.validate.find_row_errors`.
        threshold: label threshold.
        model_version: written on every scored row.
        first_row: ``row_id`` of the chunk's first row (its position in the file).

    Returns:
        (scores, rejects): ``scores`` has :data:`SCORE_COLUMNS` for the valid
        rows; ``rejects`` has ``row_id``, ``reason`` and the feature columns as
        text, for the invalid rows.
    """
    from tasks.validate import find_row_errors

    features = schema.feature_names
    reasons = find_row_errors(chunk, schema, features)
    bad = (reasons != "").to_numpy()
    row_ids = np.arange(first_row, first_row + len(chunk), dtype=np.int64)
    if bad.any():
        good = chunk.loc[~bad]
        rejected = chunk.loc[bad, features]
        rejects = pd.DataFrame(
            {
                "row_id": row_ids[bad],
                "reason": reasons[bad].astype(str).to_numpy(),
                **{
                    c: rejected[c]
                    .astype(object)
                    .where(rejected[c].notna(), None)
                    .map(lambda v: None if v is None else str(v))
                    .to_numpy()
                    for c in features
                },
            }
        )
    else:
        good, rejects = chunk, _empty_rejects(features)
    if len(good):
        scores = score_frame(
            model, good, schema, threshold, model_version, row_ids=row_ids[~bad]
        )
    else:
        scores = pd.DataFrame(
            {
                "row_id": np.array([], dtype=np.int64),
                "score": np.array([], float),
                "label": np.array([], dtype=object),
                "model_version": np.array([], dtype=object),
            }
        )
    return scores, rejects


def _empty_rejects(features: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_id": np.array([], dtype=np.int64),
            "reason": np.array([], object),
            **{c: np.array([], dtype=object) for c in features},
        }
    )


def _score_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("row_id", pa.int64()),
            ("score", pa.float64()),
            ("label", pa.string()),
            ("model_version", pa.string()),
        ]
    )


def _rejects_schema(features: list[str]):
    import pyarrow as pa

    return pa.schema(
        [("row_id", pa.int64()), ("reason", pa.string())]
        + [(c, pa.string()) for c in features]
    )


class _TableSink:
    """Append tables to a Parquet (or, for rejects, CSV) file through a temporary
    file that replaces the target only when :meth:`commit` is called."""

    def __init__(self, path: Path, schema, fmt: str):
        import tempfile

        self.path, self.schema, self.fmt = path, schema, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        import os

        os.close(fd)
        self.tmp = Path(tmp)
        if fmt == "csv":
            import pyarrow.csv as pacsv

            self.writer = pacsv.CSVWriter(str(self.tmp), schema)
        else:
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(str(self.tmp), schema, compression="zstd")

    def write(self, df: pd.DataFrame) -> None:
        import pyarrow as pa

        if len(df) or self.fmt == "parquet":
            table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
            if table.num_rows:
                self.writer.write_table(table)

    def commit(self) -> None:
        import os

        self.writer.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self.writer.close()
        except Exception:  # the file is removed anyway
            pass
        self.tmp.unlink(missing_ok=True)


def score_file(
    model,
    path: str | Path,
    out: str | Path,
    schema: Schema,
    threshold: float,
    model_version: str,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rejects: str | Path | None = None,
    fail_fast: bool = False,
    csv_sep: str = ",",
    progress: Callable[[BatchResult, int | None], None] | None = None,
) -> BatchResult:
    """Score a CSV or Parquet file chunk by chunk into a Parquet file.

    Memory holds one chunk at a time (plus the model), whatever the file size.
    Every chunk is validated with the declared schema; invalid rows are set aside
    with their reasons. Both files are written under temporary names and moved into
    place only when the whole input has been scored, so an interrupted or failed
    run leaves no partial output.

    Args:
        model: fitted pipeline (preprocessing + estimator).
        path: input CSV (any compression pyarrow detects, e.g. ``.csv.gz``) or
            Parquet file with the schema's feature columns; other columns are
            ignored.
        out: output Parquet file with ``row_id`` (0-based position in the input),
            ``score`` (positive-class probability), ``label`` and
            ``model_version``, in input order, invalid rows left out.
        schema: declared schema.
        threshold: label threshold.
        model_version: written on every row.
        chunk_size: rows per chunk.
        rejects: file for the invalid rows (``.csv`` or Parquet): ``row_id``,
            ``reason`` (``"column: reason; ..."``) and the feature values as text.
            ``None`` means invalid rows are an error, as with ``fail_fast``.
        fail_fast: stop at the first chunk with an invalid row.
        csv_sep: CSV separator.
        progress: called after each chunk with the running result and the total
            row count when known (Parquet), else ``None``.

    Returns:
        A :class:`BatchResult`.

    Raises:
        DataError: the input cannot be read or lacks feature columns.
        DataValidationError: an invalid row with ``fail_fast`` or no ``rejects``
            (the message names the row, the column and the reason).
    """
    started = time.perf_counter()
    path, out = Path(path), Path(out)
    features = schema.feature_names
    total = _parquet_rows(path)
    result = BatchResult(out=out, rejects=Path(rejects) if rejects else None)
    sink = _TableSink(out, _score_schema(), "parquet")
    reject_sink = None
    if result.rejects is not None:
        fmt = "csv" if result.rejects.suffix.lower() == ".csv" else "parquet"
        reject_sink = _TableSink(result.rejects, _rejects_schema(features), fmt)
    try:
        for chunk in iter_table_chunks(path, features, chunk_size, csv_sep):
            scores, bad = score_chunk(
                model, chunk, schema, threshold, model_version, first_row=result.rows
            )
            if len(bad) and (fail_fast or reject_sink is None):
                first = bad.iloc[0]
                raise DataValidationError(
                    f"{path}: row {int(first['row_id'])} is invalid: "
                    f"{first['reason']} ({len(bad)} invalid row(s) in this chunk of "
                    f"{len(chunk)}). Fix the input, or score without --fail-fast to "
                    "set invalid rows aside in a rejects file.",
                    issues=[
                        {
                            "column": None,
                            "rule": "row",
                            "message": r["reason"],
                            "count": 1,
                            "examples": [{"row": int(r["row_id"]), "value": None}],
                        }
                        for _, r in bad.head(5).iterrows()
                    ],
                )
            sink.write(scores)
            if reject_sink is not None:
                reject_sink.write(bad)
                for reason, n in bad["reason"].value_counts().items():
                    if reason in result.reasons or len(result.reasons) < 20:
                        result.reasons[reason] = result.reasons.get(reason, 0) + int(n)
            result.rows += len(chunk)
            result.scored += len(scores)
            result.rejected += len(bad)
            result.chunks += 1
            result.seconds = time.perf_counter() - started
            if progress is not None:
                progress(result, total)
        if result.rows == 0:
            raise DataError(f"data file {str(path)!r} has a header but no rows")
        sink.commit()
        if reject_sink is not None:
            reject_sink.commit()
    except BaseException:
        sink.discard()
        if reject_sink is not None:
            reject_sink.discard()
        raise
    result.seconds = time.perf_counter() - started
    return result


def _parquet_rows(path: Path) -> int | None:
    """Row count from a Parquet footer, ``None`` for CSV or an unreadable file."""
    if not str(path).lower().endswith((".parquet", ".pq")) or not path.is_file():
        return None
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # iter_table_chunks reports the real problem
        return None
