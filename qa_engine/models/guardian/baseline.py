"""The Guardian's naive baseline: realised-volatility quartiles, and how well any regime labelling
separates future volatility (numpy only; pure functions over arrays of one gap-aware bar series).

- `rolling_realised_volatility`: rv[t] = population std of the 1-bar log returns of rows t-T+1 .. t
  (T = the Guardian's window_bars, the same statistic as `train.window_volatility`), NaN unless those
  rows are consecutive bars: it reads bars <= t only;
- `rv_quartile_edges` / `rv_quartile_labels`: regime = quartile of rv[t] (0 = calmest), the three edges
  fitted on the training range's rows only;
- `future_realised_volatility`: fv[t] = sqrt(mean r^2 of bars t+1 .. t+H) (what a regime should say
  something about; NaN unless those bars are consecutive);
- `regime_separation`: eta^2 = the share of the variance of ln fv explained by the regime label
  (between-regime sum of squares / total; log because volatility is roughly log-normal and a few
  crash hours would otherwise decide the figure), the mean fv per regime and the ratio of the highest
  to the lowest regime mean (the "spread");
- `skill_vs_strongest_baseline`: the Guardian against the best baseline on separation (eta^2, pooled
  over the folds' test ranges) and on stability between refits (adjusted Rand index), with the
  report line "Skill against the strongest baseline ...".
"""

from __future__ import annotations

from typing import Any

import numpy as np

RV_BASELINE = "rv_quartiles"


def _consecutive(ts: np.ndarray, first: np.ndarray, last: np.ndarray, step_ns: int) -> np.ndarray:
    return (ts[last] - ts[first]) == (last - first) * step_ns


def rolling_realised_volatility(
    returns: np.ndarray, ts: np.ndarray, window_bars: int, step_ns: int
) -> np.ndarray:
    """(N,) population std of returns[t-T+1 .. t] where those rows are consecutive bars, else NaN."""
    returns = np.asarray(returns, dtype=np.float64)
    count = len(returns)
    out = np.full(count, np.nan)
    if count < window_bars:
        return out
    ends = np.arange(window_bars - 1, count)
    ok = _consecutive(ts, ends - window_bars + 1, ends, step_ns)
    filled = np.where(np.isfinite(returns), returns, 0.0)
    sums = np.concatenate([[0.0], np.cumsum(filled)])
    squares = np.concatenate([[0.0], np.cumsum(filled**2)])
    finite = np.concatenate([[0], np.cumsum(np.isfinite(returns))])
    mean = (sums[ends + 1] - sums[ends + 1 - window_bars]) / window_bars
    second = (squares[ends + 1] - squares[ends + 1 - window_bars]) / window_bars
    complete = (finite[ends + 1] - finite[ends + 1 - window_bars]) == window_bars
    out[ends] = np.where(ok & complete, np.sqrt(np.maximum(second - mean**2, 0.0)), np.nan)
    return out


def rv_quartile_edges(rv: np.ndarray, ts: np.ndarray, train_bounds: tuple[int, int]) -> np.ndarray:
    """(3,) the 25/50/75% quantiles of rv over the rows closing in the training range."""
    inside = (ts >= train_bounds[0]) & (ts < train_bounds[1]) & np.isfinite(rv)
    if not np.any(inside):
        raise ValueError("no row with a realised volatility in the training range")
    return np.quantile(rv[inside], [0.25, 0.5, 0.75])


def rv_quartile_labels(rv: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(N,) int64 quartile 0..3 of rv (0 = calmest); -1 where rv is NaN."""
    labels = np.searchsorted(edges, np.nan_to_num(rv, nan=0.0), side="right").astype(np.int64)
    return np.where(np.isfinite(rv), labels, -1)


def future_realised_volatility(
    returns: np.ndarray, ts: np.ndarray, horizon_bars: int, step_ns: int
) -> np.ndarray:
    """(N,) sqrt(mean r^2 over bars t+1 .. t+H) where t .. t+H are consecutive bars, else NaN."""
    returns = np.asarray(returns, dtype=np.float64)
    count = len(returns)
    out = np.full(count, np.nan)
    if count <= horizon_bars:
        return out
    starts = np.arange(count - horizon_bars)
    ok = _consecutive(ts, starts, starts + horizon_bars, step_ns)
    squares = np.concatenate([[0.0], np.cumsum(np.where(np.isfinite(returns), returns, 0.0) ** 2)])
    finite = np.concatenate([[0], np.cumsum(np.isfinite(returns))])
    mean = (squares[starts + horizon_bars + 1] - squares[starts + 1]) / horizon_bars
    complete = (finite[starts + horizon_bars + 1] - finite[starts + 1]) == horizon_bars
    out[starts] = np.where(ok & complete, np.sqrt(mean), np.nan)
    return out


def rv_quartiles(
    returns: np.ndarray, ts: np.ndarray, window_bars: int, train_bounds: tuple[int, int], step_ns: int
) -> np.ndarray:
    """(N,) the baseline's regime per row: quartile of the T-bar realised volatility, edges from the
    training range (-1 where the window is incomplete)."""
    rv = rolling_realised_volatility(returns, ts, window_bars, step_ns)
    return rv_quartile_labels(rv, rv_quartile_edges(rv, ts, train_bounds))


def fold_separation(
    returns: np.ndarray,
    ts: np.ndarray,
    rows: np.ndarray,
    labellings: dict[str, np.ndarray],
    n_regimes: dict[str, int],
    horizon_bars: int,
    step_ns: int,
) -> dict[str, Any]:
    """`regime_separation` of every labelling of the bars `rows` (rows of the table behind `returns`,
    `ts`) against the realised volatility of the next `horizon_bars` bars."""
    future = future_realised_volatility(returns, ts, horizon_bars, step_ns)[rows]
    result = {name: regime_separation(labels, future, n_regimes[name]) for name, labels in labellings.items()}
    for item in result.values():
        item["horizon_bars"] = horizon_bars
    return result


def regime_separation(labels: np.ndarray, future_vol: np.ndarray, n_regimes: int) -> dict[str, Any]:
    """eta^2 of ln(future vol) by regime, mean future vol per regime, spread (max / min mean)."""
    labels = np.asarray(labels, dtype=np.int64)
    use = (labels >= 0) & np.isfinite(future_vol) & (future_vol > 0)
    y = np.log(future_vol[use])
    groups = labels[use]
    total = float(((y - y.mean()) ** 2).sum()) if len(y) else float("nan")
    between = 0.0
    means = []
    for k in range(n_regimes):
        mine = groups == k
        if np.any(mine):
            between += float(mine.sum() * (y[mine].mean() - y.mean()) ** 2)
            means.append(float(future_vol[use][mine].mean()))
        else:
            means.append(float("nan"))
    finite = [m for m in means if np.isfinite(m)]
    return {
        "bars": int(use.sum()),
        "eta_squared": between / total if total > 0 else float("nan"),
        "mean_future_vol_by_regime": means,
        "spread": max(finite) / min(finite) if finite and min(finite) > 0 else float("nan"),
    }


def skill_vs_strongest_baseline(report: dict[str, Any]) -> dict[str, Any]:
    """The Guardian against its strongest baseline, from a regimes report with `separation` per fold
    (and `stability` if several folds): eta^2 pooled as the bar-weighted mean over the folds' test
    ranges, ARI as the mean over the fold pairs; skill = guardian / baseline - 1 (> 0: Guardian better)."""
    result: dict[str, Any] = {}
    folds = [fold["separation"] for fold in report["folds"].values() if "separation" in fold]
    if folds:
        names = list(folds[0])
        weights = np.array([fold["guardian"]["bars"] for fold in folds], dtype=np.float64)
        pooled = {
            name: float(np.average([fold[name]["eta_squared"] for fold in folds], weights=weights))
            for name in names
        }
        result["separation"] = _versus(pooled, "eta_squared of ln future realised volatility")
    pairs = list(report.get("stability", {}).get("pairs", {}).values())
    if pairs:
        keys = {"guardian": "guardian_reported"}
        keys.update({name: name for name in pairs[0] if name.endswith("_baseline")})
        mean_ari = {
            name: float(np.mean([pair[key]["adjusted_rand_index"] for pair in pairs]))
            for name, key in keys.items()
            if all(key in pair for pair in pairs)
        }
        result["stability"] = _versus(mean_ari, "adjusted Rand index between refits")
    return result


def _versus(scores: dict[str, float], metric: str) -> dict[str, Any]:
    baselines = {name: value for name, value in scores.items() if name != "guardian"}
    strongest = max(baselines, key=lambda name: baselines[name])
    guardian, baseline = scores["guardian"], baselines[strongest]
    return {
        "metric": metric,
        "scores": scores,
        "strongest_baseline": strongest,
        "guardian": guardian,
        "baseline": baseline,
        "skill": guardian / baseline - 1.0 if baseline > 0 else float("nan"),
        "stronger": "guardian" if guardian > baseline else "baseline",
    }


def strongest_baseline_line(skill: dict[str, Any]) -> str:
    """'Skill against the strongest baseline: separation ...; stability ...' (empty if nothing known)."""
    parts = []
    for key, label in (("separation", "future-volatility separation eta^2"), ("stability", "refit ARI")):
        if key in skill:
            item = skill[key]
            parts.append(
                f"{label} {item['guardian']:.3f} vs {item['baseline']:.3f} for {item['strongest_baseline']} "
                f"({item['skill']:+.0%}; the {item['stronger']} is stronger)"
            )
    return ("Skill against the strongest baseline: " + "; ".join(parts)) if parts else ""
