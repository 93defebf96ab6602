"""Check a table against the declared schema.

Two levels share one set of rules:

* :func:`find_row_errors` gives, for every row, the reasons it breaks the schema
  (used by batch scoring to set bad rows aside);
* :func:`validate_frame` runs the table-level checks too (columns present, not empty,
  target binary, duplicates) and returns a quality report; :func:`check_frame`
  raises :class:`~tasks.errors.DataValidationError` when it has errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.errors import DataValidationError
from tasks.schema import Schema, replace_missing_tokens

MAX_EXAMPLES = 5


def _examples(values: pd.Series, limit: int = MAX_EXAMPLES) -> list[dict[str, Any]]:
    """A few offending (row, value) pairs; rows are 0-based positions in the table."""
    head = values.head(limit)
    return [
        {"row": int(i), "value": None if pd.isna(v) else _plain(v)}
        for i, v in head.items()
    ]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, (int, float, str, bool)) else str(v)


def _column_rules(
    s: pd.Series, col, missing_tokens
) -> list[tuple[str, pd.Series, str]]:
    """(rule, mask of offending rows, description) for one column's values."""
    rules = []
    raw = s
    s = replace_missing_tokens(s.to_frame(), missing_tokens)[s.name]
    missing = s.isna()
    if not col.nullable:
        rules.append(("not_null", missing, "missing value where none is allowed"))
    present = ~missing
    if col.is_numeric:
        num = pd.to_numeric(s, errors="coerce")
        bad_type = present & num.isna()
        rules.append(("type", bad_type, f"value is not a number ({col.type})"))
        ok = present & ~bad_type
        if col.type == "integer":
            frac = ok & (num != np.floor(num))
            rules.append(("type", frac, "value is not a whole number (integer)"))
        if col.min is not None:
            rules.append(("min", ok & (num < col.min), f"value below min {col.min}"))
        if col.max is not None:
            rules.append(("max", ok & (num > col.max), f"value above max {col.max}"))
    elif col.categories is not None:
        as_str = raw.where(missing, raw.astype(str))
        # whole floats read from CSV ("1.0") must match category "1"
        if pd.api.types.is_float_dtype(raw):
            as_str = raw.map(
                lambda v: v if pd.isna(v) else (str(int(v)) if v == int(v) else str(v))
            )
        unseen = present & ~as_str.isin(col.categories)
        rules.append(
            (
                "categories",
                unseen,
                f"value not among the {len(col.categories)} allowed categories",
            )
        )
    return rules


def find_row_errors(
    df: pd.DataFrame, schema: Schema, columns: list[str] | None = None
) -> pd.Series:
    """Per-row reasons for breaking the schema.

    Args:
        df: the table, with at least ``columns``.
        schema: the declared schema.
        columns: which declared columns to check (default: all present in ``df``).

    Returns:
        A string Series aligned with ``df``: empty for a valid row, otherwise
        ``"column: reason; column: reason"``.
    """
    names = columns if columns is not None else [n for n in schema.names if n in df]
    reasons = pd.Series("", index=df.index, dtype=object)
    for name in names:
        for _rule, mask, text in _column_rules(
            df[name], schema[name], schema.missing_values
        ):
            if mask.any():
                add = f"{name}: {text}"
                reasons[mask] = [r + "; " + add if r else add for r in reasons[mask]]
    return reasons


def validate_frame(
    df: pd.DataFrame,
    schema: Schema,
    require_target: bool = True,
    max_duplicate_share: float = 0.05,
) -> dict[str, Any]:
    """Check a table against the schema and return a data-quality report.

    Args:
        df: the raw table (as read from the source).
        schema: the declared schema.
        require_target: check that the target is present and binary.
        max_duplicate_share: fully duplicated rows above this share are an error
            (below it, a warning).

    Returns:
        ``{"rows", "columns", "errors": [...], "warnings": [...], "profile": {...}}``
        where each error or warning is ``{"column", "rule", "message", "count",
        "examples"}``.
    """
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "rows": int(len(df)),
        "columns": [str(c) for c in df.columns],
        "errors": errors,
        "warnings": warnings,
        "profile": {},
    }
    if len(df) == 0:
        errors.append(_issue(None, "not_empty", "the table has no rows", 0, []))
        return report
    expected = [n for n in schema.names if require_target or n != schema.target]
    missing_cols = [n for n in expected if n not in df.columns]
    for name in missing_cols:
        errors.append(
            _issue(
                name,
                "present",
                f"column {name!r} is declared in the schema but missing from the data "
                f"(columns found: {[str(c) for c in df.columns][:20]})",
                len(df),
                [],
            )
        )
    extra = [str(c) for c in df.columns if c not in schema.names]
    if extra:
        warnings.append(
            _issue(None, "undeclared", f"undeclared columns ignored: {extra}", 0, [])
        )
    positional = df.reset_index(drop=True)
    for name in [n for n in expected if n in df.columns]:
        col = schema[name]
        for rule, mask, text in _column_rules(
            positional[name], col, schema.missing_values
        ):
            count = int(mask.sum())
            if count:
                errors.append(
                    _issue(
                        name,
                        rule,
                        f"column {name!r}: {count} row(s) with {text}",
                        count,
                        _examples(positional[name][mask]),
                    )
                )
        report["profile"][name] = _profile(positional[name], col, schema)
    if require_target and schema.target in df.columns:
        tgt = positional[schema.target].dropna().astype(str)
        seen = sorted(tgt.unique().tolist())
        if schema.positive_label not in seen or len(seen) < 2:
            errors.append(
                _issue(
                    schema.target,
                    "binary",
                    f"target {schema.target!r} must contain both classes "
                    f"{list(schema[schema.target].categories or ())}; found {seen}",
                    len(df),
                    [],
                )
            )
    dup = positional.duplicated()
    n_dup = int(dup.sum())
    report["duplicates"] = n_dup
    if n_dup:
        share = n_dup / len(df)
        issue = _issue(
            None,
            "duplicates",
            f"{n_dup} fully duplicated row(s) ({share:.1%}; limit "
            f"{max_duplicate_share:.0%})",
            n_dup,
            [{"row": int(i), "value": None} for i in dup[dup].index[:MAX_EXAMPLES]],
        )
        (errors if share > max_duplicate_share else warnings).append(issue)
    return report


def _profile(s: pd.Series, col, schema: Schema) -> dict[str, Any]:
    s = replace_missing_tokens(s.to_frame(), schema.missing_values)[s.name]
    out: dict[str, Any] = {"type": col.type, "missing": int(s.isna().sum())}
    if col.is_numeric:
        num = pd.to_numeric(s, errors="coerce")
        out.update(
            min=_plain(num.min()),
            max=_plain(num.max()),
            mean=round(float(num.mean()), 4),
        )
    else:
        out["distinct"] = int(s.nunique())
    return out


def _issue(column, rule, message, count, examples) -> dict[str, Any]:
    return {
        "column": column,
        "rule": rule,
        "message": message,
        "count": int(count),
        "examples": examples,
    }


def format_issues(issues: list[dict[str, Any]], limit: int = 5) -> str:
    """One readable line per issue, with a few offending rows and values."""
    lines = []
    for issue in issues[:limit]:
        ex = ", ".join(f"row {e['row']}: {e['value']!r}" for e in issue["examples"])
        rule = f"[{issue['rule']}]"
        lines.append(f"{rule} {issue['message']}" + (f" (e.g. {ex})" if ex else ""))
    if len(issues) > limit:
        lines.append(f"... and {len(issues) - limit} more issue(s)")
    return "\n".join(lines)


def check_frame(report: dict[str, Any], source: str = "data") -> None:
    """Raise if a :func:`validate_frame` report has errors.

    Raises:
        DataValidationError: naming the column, rule and a few offending values of
            each failed check.
    """
    if report["errors"]:
        n = len(report["errors"])
        raise DataValidationError(
            f"{source} failed validation with {n} error(s):\n"
            + format_issues(report["errors"]),
            issues=report["errors"],
        )
