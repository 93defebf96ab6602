"""Ingest: read the configured source into a raw snapshot with its content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import ConfigError
from tasks.io import read_table, sha256_file


def ingest_table(
    data_path: str | Path, csv_sep: str = ",", sample: int | None = None, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the source table and describe it.

    Args:
        data_path: a CSV or Parquet file.
        csv_sep: CSV field separator.
        sample: keep a random sample of this many rows (``None`` or 0: all rows);
            the test profile uses it to stay fast.
        seed: seed of that sample.

    Returns:
        The table as read (no cleaning) and ``{"source", "sha256", "rows",
        "columns", "sampled_rows"}``.

    Raises:
        DataError: the file is missing, empty or unreadable.
        ConfigError: ``sample`` is negative.
    """
    df = read_table(data_path, csv_sep=csv_sep)
    meta = {
        "source": str(data_path),
        "sha256": sha256_file(data_path),
        "rows": int(len(df)),
        "columns": [str(c) for c in df.columns],
    }
    if sample:
        if sample < 0:
            raise ConfigError(f"sample must be a positive row count, got {sample}")
        if sample < len(df):
            df = df.sample(n=sample, random_state=seed).sort_index()
    df = df.reset_index(drop=True)
    # Parquet needs string column names
    df.columns = [str(c) for c in df.columns]
    meta["sampled_rows"] = int(len(df))
    return df, meta
