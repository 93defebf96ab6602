"""Split: stratified, seeded train / validation / test partitions."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from tasks.errors import ConfigError, DataValidationError


def split_data(
    df: pd.DataFrame,
    target: str,
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a validated table into train, validation and test.

    Both cuts are stratified on ``target`` and seeded, so the same table and seed
    give identical partitions. Row order inside each part follows the original
    table.

    Args:
        df: validated table including ``target``.
        target: target column name.
        test_size: share of all rows held out for the final test.
        val_size: share of all rows used for model selection.
        seed: random seed.

    Returns:
        (train, val, test) DataFrames with a fresh 0..n-1 index each.

    Raises:
        ConfigError: the shares are not in (0, 1) or leave no training rows.
        DataValidationError: a class has too few rows to stratify.
    """
    if not (0 < test_size < 1 and 0 < val_size < 1 and test_size + val_size < 0.9):
        raise ConfigError(
            f"test_size={test_size} and val_size={val_size} must be in (0, 1) and sum "
            "below 0.9"
        )
    counts = df[target].value_counts()
    if len(counts) < 2 or counts.min() < 5:
        raise DataValidationError(
            f"target {target!r} needs at least 5 rows of each class to split; "
            f"counts are {counts.to_dict()}"
        )
    rest, test = train_test_split(
        df, test_size=test_size, stratify=df[target], random_state=seed
    )
    train, val = train_test_split(
        rest,
        test_size=val_size / (1 - test_size),
        stratify=rest[target],
        random_state=seed,
    )
    return tuple(
        part.sort_index().reset_index(drop=True) for part in (train, val, test)
    )
