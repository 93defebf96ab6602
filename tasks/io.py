"""All file reading and writing of the pipeline's stages lives here.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) so an
interrupted build never leaves a half-written product behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from tasks.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file name.

    Raises:
        DataError: the suffix is neither.
    """
    name = str(path).lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise DataError(
        f"{str(path)!r}: unknown table format; use a CSV ({', '.join(CSV_SUFFIXES)}) "
        f"or Parquet ({', '.join(PARQUET_SUFFIXES)}) file"
    )


def read_table(path: str | Path, csv_sep: str = ",") -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Raises:
        DataError: the file does not exist, is empty, has no rows, or cannot be
            parsed; the message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty (0 bytes)")
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep=csv_sep, low_memory=False)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"data file {str(path)!r} has no columns: {e}") from e
    except Exception as e:  # parser errors come in many types; name them all
        raise DataError(
            f"data file {str(path)!r} could not be read as {fmt}: "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
        ) from e
    if fmt == "csv" and df.shape[1] == 1 and csv_sep not in str(df.columns[0]):
        header = str(df.columns[0])
        for sep in (";", ",", "\t", "|"):
            if sep != csv_sep and sep in header:
                raise DataError(
                    f"data file {str(path)!r} has one column {header[:60]!r}: it looks "
                    f"separated by {sep!r}, not {csv_sep!r}; set csv_sep in env.yaml"
                )
    if len(df) == 0:
        raise DataError(f"data file {str(path)!r} has a header but no rows")
    return df


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame to Parquet atomically, byte-for-byte reproducible."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")


def read_parquet(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_model(model: Any, path: str | Path) -> None:
    """Persist a fitted estimator or pipeline with joblib, atomically."""
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)


def load_model(path: str | Path) -> Any:
    return joblib.load(path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
