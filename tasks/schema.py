"""The data schema: declared once in a YAML file, interpreted only here.

Batch validation, the feature pipeline and the API's request model are all derived
from one :class:`Schema`. ``infer_schema`` drafts a schema from a table for a person
to review (``nbship infer-schema``).

Schema file layout::

    target: y                 # binary target column
    positive_label: "yes"     # the value that counts as the positive class
    drop: [duration]          # columns present in the data but never used as features
    missing_values: [unknown] # tokens that mean "missing" (besides empty cells)
    columns:
      age: {type: integer, min: 18, max: 100}
      job: {type: category, nullable: true, categories: [admin., blue-collar, ...]}
      y: {type: category, categories: ["no", "yes"]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.errors import ConfigError

TYPES = ("integer", "float", "category")


@dataclass(frozen=True)
class Column:
    """One declared column.

    Attributes:
        name: column name in the table.
        type: ``integer``, ``float`` or ``category``.
        nullable: whether missing values are allowed.
        min: smallest allowed value (numeric columns), inclusive.
        max: largest allowed value (numeric columns), inclusive.
        categories: allowed values (category columns); ``None`` allows any.
        description: free text shown in reports and the API docs.
    """

    name: str
    type: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integer", "float")


@dataclass(frozen=True)
class Schema:
    """A table's contract: its columns, the binary target and what to drop."""

    columns: tuple[Column, ...]
    target: str
    positive_label: str
    drop: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = ()
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[Column]:
        """Columns the model sees: all but the target and the dropped ones."""
        return [
            c for c in self.columns if c.name != self.target and c.name not in self.drop
        ]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.features if c.is_numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.features if not c.is_numeric]

    @property
    def labels(self) -> tuple[str, str]:
        """(negative, positive) target labels."""
        cats = self[self.target].categories or ()
        negative = [c for c in cats if c != self.positive_label]
        return (negative[0] if negative else "", self.positive_label)


def schema_from_dict(spec: dict[str, Any], source: str = "schema") -> Schema:
    """Build a :class:`Schema` from its YAML mapping.

    Raises:
        ConfigError: a key is missing, a type is unknown, or the target is not a
            binary category column that contains ``positive_label``.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(spec).__name__}")
    for key in ("target", "positive_label", "columns"):
        if key not in spec:
            raise ConfigError(f"{source}: missing required key {key!r}")
    if not isinstance(spec["columns"], dict) or not spec["columns"]:
        raise ConfigError(f"{source}: 'columns' must be a non-empty mapping")
    columns = []
    for name, col in spec["columns"].items():
        col = dict(col or {})
        ctype = col.pop("type", None)
        if ctype not in TYPES:
            raise ConfigError(
                f"{source}: column {name!r} has type {ctype!r}; use one of {TYPES}"
            )
        cats = col.pop("categories", None)
        unknown = set(col) - {"nullable", "min", "max", "description"}
        if unknown:
            raise ConfigError(
                f"{source}: column {name!r} has unknown keys {sorted(unknown)}"
            )
        columns.append(
            Column(
                name=str(name),
                type=ctype,
                nullable=bool(col.get("nullable", False)),
                min=col.get("min"),
                max=col.get("max"),
                categories=tuple(str(c) for c in cats) if cats is not None else None,
                description=str(col.get("description", "")),
            )
        )
    schema = Schema(
        columns=tuple(columns),
        target=str(spec["target"]),
        positive_label=str(spec["positive_label"]),
        drop=tuple(str(d) for d in spec.get("drop") or ()),
        missing_values=tuple(str(m) for m in spec.get("missing_values") or ()),
    )
    if schema.target not in schema.names:
        raise ConfigError(
            f"{source}: target {schema.target!r} is not a declared column"
        )
    target = schema[schema.target]
    if target.type != "category" or target.categories is None:
        raise ConfigError(
            f"{source}: target {schema.target!r} must be a category column with its "
            "two categories listed"
        )
    if len(target.categories) != 2 or schema.positive_label not in target.categories:
        raise ConfigError(
            f"{source}: target {schema.target!r} must have exactly two categories "
            f"including positive_label {schema.positive_label!r}; "
            f"got {list(target.categories)}"
        )
    missing_drop = [d for d in schema.drop if d not in schema.names]
    if missing_drop:
        raise ConfigError(f"{source}: 'drop' names undeclared columns {missing_drop}")
    if not schema.features:
        raise ConfigError(f"{source}: no feature columns left after 'drop'")
    return schema


def schema_to_dict(schema: Schema) -> dict[str, Any]:
    """Inverse of :func:`schema_from_dict` (omits defaults)."""
    cols: dict[str, Any] = {}
    for c in schema.columns:
        d: dict[str, Any] = {"type": c.type}
        if c.nullable:
            d["nullable"] = True
        if c.min is not None:
            d["min"] = c.min
        if c.max is not None:
            d["max"] = c.max
        if c.categories is not None:
            d["categories"] = list(c.categories)
        if c.description:
            d["description"] = c.description
        cols[c.name] = d
    return {
        "target": schema.target,
        "positive_label": schema.positive_label,
        "drop": list(schema.drop),
        "missing_values": list(schema.missing_values),
        "columns": cols,
    }


def load_schema(path: str | Path) -> Schema:
    """Read a schema YAML file.

    Raises:
        ConfigError: the file is missing or not a valid schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"schema file {str(path)!r} not found; draft one with "
            "`nbship infer-schema DATA --target COLUMN`"
        )
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"schema file {str(path)!r} is not valid YAML: {e}") from e
    return schema_from_dict(spec, source=str(path))


def _to_str_or_nan(s: pd.Series) -> pd.Series:
    """Category values as Python ``str`` (object dtype), missing as ``np.nan``."""
    out = s.astype(object)
    mask = out.notna()
    out = out.where(mask, np.nan)
    # 1.0 read from a CSV would otherwise become "1.0" and miss category "1"
    out[mask] = [
        str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
        for v in out[mask]
    ]
    return out


def replace_missing_tokens(df: pd.DataFrame, tokens: tuple[str, ...]) -> pd.DataFrame:
    """Replace the declared missing-value tokens (e.g. ``unknown``) with NaN."""
    if not tokens:
        return df
    out = df.copy()
    for name in out.columns:
        s = out[name]
        if not pd.api.types.is_numeric_dtype(s):
            out[name] = s.where(~s.isin(tokens), np.nan)
    return out


def _coerce_numeric(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iufb":
        return values.astype(np.float64)
    # text, missing tokens and anything unparsable become NaN
    parsed = pd.to_numeric(pd.Series(values, copy=False), errors="coerce")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _coerce_category(values: np.ndarray, tokens: tuple[str, ...]) -> np.ndarray:
    out = np.asarray(values, dtype=object).copy()
    missing = pd.isna(out)
    if tokens:
        missing |= pd.Series(out, copy=False).isin(tokens).to_numpy()
    out[missing] = np.nan
    if pd.api.types.infer_dtype(out[~missing], skipna=False) not in ("string", "empty"):
        # numbers read from CSV: 1.0 must match category "1"
        out[~missing] = _to_str_or_nan(pd.Series(out[~missing])).to_numpy()
    return out


def coerce_frame(
    df: pd.DataFrame, schema: Schema, columns: list[str] | None = None
) -> pd.DataFrame:
    """Give ``columns`` (default: every declared column present) canonical dtypes.

    Numeric columns become ``float64`` (values that cannot be parsed become NaN:
    run :func:`tasks.validate.find_row_errors` first to report them); category
    columns become object dtype holding ``str`` with ``np.nan`` for missing. Missing
    tokens are replaced by NaN. Columns not in ``columns`` are dropped.

    Works on NumPy arrays column by column: it runs on every prediction, where a
    single row must cost well under a millisecond.
    """
    names = columns if columns is not None else [n for n in schema.names if n in df]
    data = {}
    for name in names:
        values = df[name].to_numpy()
        if schema[name].is_numeric:
            data[name] = _coerce_numeric(values)
        else:
            # an explicit object Series: pandas 3 would infer its `str` dtype
            data[name] = pd.Series(
                _coerce_category(values, schema.missing_values),
                index=df.index,
                dtype=object,
                copy=False,
            )
    return pd.DataFrame(data, index=df.index, copy=False)


def infer_schema(
    df: pd.DataFrame,
    target: str,
    positive_label: str | None = None,
    drop: list[str] | None = None,
    missing_values: list[str] | None = None,
    max_categories: int = 50,
) -> dict[str, Any]:
    """Draft a schema mapping from a table, for a person to review.

    Numeric columns get their observed min and max as bounds, text columns with at
    most ``max_categories`` distinct values become categories (more distinct values
    also become ``category`` without a list, which allows any value). Nullable is set
    where missing values were seen.

    Raises:
        ConfigError: ``target`` is not a column or is not binary.
    """
    if target not in df.columns:
        raise ConfigError(
            f"target {target!r} is not a column of the table; columns are "
            f"{list(df.columns)}"
        )
    df = replace_missing_tokens(df, tuple(missing_values or ()))
    columns: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        nullable = bool(s.isna().any())
        if name == target:
            values = sorted(_to_str_or_nan(s.dropna()).unique().tolist())
            if len(values) != 2:
                raise ConfigError(
                    f"target {target!r} must have exactly two values, found "
                    f"{len(values)}: {values[:10]}"
                )
            columns[name] = {"type": "category", "categories": values}
            continue
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(object).map(lambda v: v if pd.isna(v) else str(v))
        if pd.api.types.is_numeric_dtype(s):
            is_int = pd.api.types.is_integer_dtype(s) or bool(
                (s.dropna() == np.floor(s.dropna())).all()
            )
            spec: dict[str, Any] = {"type": "integer" if is_int else "float"}
            if s.notna().any():
                lo, hi = s.min(), s.max()
                spec["min"] = int(lo) if is_int else float(lo)
                spec["max"] = int(hi) if is_int else float(hi)
        else:
            values = _to_str_or_nan(s.dropna()).unique().tolist()
            spec = {"type": "category"}
            if len(values) <= max_categories:
                spec["categories"] = sorted(values)
        if nullable:
            spec["nullable"] = True
        columns[name] = spec
    labels = columns[target]["categories"]
    if positive_label is None:
        positive_label = labels[1]
    if str(positive_label) not in labels:
        raise ConfigError(
            f"positive_label {positive_label!r} is not a value of target {target!r}: "
            f"{labels}"
        )
    return {
        "target": target,
        "positive_label": str(positive_label),
        "drop": list(drop or []),
        "missing_values": list(missing_values or []),
        "columns": columns,
    }
