"""Plots of explanations (global importance, beeswarm, dependence, one row).

Each function takes values and returns a matplotlib figure; saving is the
caller's business.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.explain import Explanation


def plot_importance(importance: pd.Series, top: int = 15):
    """Horizontal bars: mean |contribution| (log-odds) per feature."""
    import matplotlib.pyplot as plt

    imp = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(imp) + 1.2))
    ax.barh(imp.index.astype(str), imp.to_numpy(), color="#4c72b0")
    ax.set(xlabel="mean |contribution| (log-odds)", title="Global importance")
    fig.tight_layout()
    return fig


def _colour_values(values: pd.Series) -> np.ndarray:
    """Feature values mapped to [0, 1] for colouring (ranks; categories by code)."""
    if pd.api.types.is_numeric_dtype(values):
        ranks = values.rank(pct=True)
    else:
        ranks = values.astype("category").cat.codes.astype(float)
        ranks = ranks / max(ranks.max(), 1)
    return ranks.fillna(0.5).to_numpy()


def plot_beeswarm(
    explanation: Explanation, X: pd.DataFrame, top: int = 12, seed: int = 0
):
    """One dot per row and feature: its contribution, coloured by feature value."""
    import matplotlib.pyplot as plt

    order = explanation.contributions.abs().mean().sort_values().index[-top:]
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(order) + 1.4))
    for i, feature in enumerate(order):
        contrib = explanation.contributions[feature].to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(contrib))
        ax.scatter(
            contrib,
            i + jitter,
            c=_colour_values(X[feature]),
            cmap="coolwarm",
            s=6,
            alpha=0.6,
            linewidths=0,
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), [str(f) for f in order])
    ax.set(
        xlabel="contribution to the log-odds (colour: low -> high feature value)",
        title="Per-row contributions",
    )
    fig.tight_layout()
    return fig


def plot_dependence(explanation: Explanation, X: pd.DataFrame, features: list[str]):
    """Contribution against feature value, one panel per feature."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(features), figsize=(4.2 * len(features), 3.6), squeeze=False
    )
    for ax, feature in zip(axes[0], features, strict=True):
        values = X[feature]
        contrib = explanation.contributions[feature]
        if pd.api.types.is_numeric_dtype(values):
            ax.scatter(values, contrib, s=6, alpha=0.5)
        else:
            cats = values.fillna("(missing)").astype(str)
            order = sorted(cats.unique())
            data = [contrib[cats == c].to_numpy() for c in order]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(order) + 1), order, rotation=45, ha="right")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(title=str(feature), ylabel="contribution (log-odds)")
    fig.tight_layout()
    return fig


def plot_row(explanation: Explanation, row, top: int = 10):
    """Waterfall-style bars for one row: base value, top contributions, score."""
    import matplotlib.pyplot as plt

    contrib = explanation.contributions.loc[row]
    order = contrib.abs().sort_values(ascending=False).index[:top]
    rest = contrib.drop(order).sum()
    labels = ["base value", *[str(o) for o in order], "other features"]
    values = [explanation.base_value[row], *contrib[order].to_numpy(), rest]
    starts = np.concatenate([[0], np.cumsum(values)[:-1]])
    colours = ["grey"] + ["#c44e52" if v > 0 else "#4c72b0" for v in values[1:]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.4))
    ax.barh(range(len(labels))[::-1], values, left=starts, color=colours)
    ax.set_yticks(range(len(labels))[::-1], labels)
    p = explanation.probability[row]
    ax.set(
        xlabel="log-odds",
        title=f"row {row}: raw score "
        f"{explanation.raw_score[row]:.3f}, probability {p:.3f}",
    )
    fig.tight_layout()
    return fig
