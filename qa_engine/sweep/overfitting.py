"""Overfitting statistics for a parameter sweep: how much of the best trial's backtest is selection luck.

A sweep runs N parameter sets (trials) over the same data and keeps the best. The best backtest is the
maximum of N noisy estimates, so it looks better than the strategy is. Two statistics say by how much.

What each figure means in a sweep report
----------------------------------------
- **Probabilistic Sharpe ratio (PSR)**: the probability that the true Sharpe ratio of one backtest
  exceeds a benchmark Sharpe, given its length, skewness and kurtosis. 0.95 reads "95 % confident the
  strategy beats the benchmark"; it knows nothing about how many trials were tried.
- **Deflated Sharpe ratio (DSR)**: the PSR of the best trial against the Sharpe the best of N worthless
  trials would be expected to reach (``expected_max_sharpe``). Below 0.95, the best trial's Sharpe is
  not distinguishable from what the search alone would have produced.
- **Probability of backtest overfitting (PBO)**: split the bars into halves in every balanced way, pick
  the best trial on one half and look up where it ranks on the other. PBO is the share of splits in which
  the in-sample winner ranks at or below the out-of-sample median. Near 0: the winner keeps winning.
  Near 0.5: the ranking is noise (for an even number of trials). Above 0.5: the search picks trials that
  do worse than average out of sample. ``probability_of_loss`` is the share of splits where the winner's
  out-of-sample metric is below 0 (a losing Sharpe).

Formulas
--------
PSR (Bailey & López de Prado 2012; 2014, eq. 2), with SR the per-observation Sharpe of T observations,
γ3 their skewness and γ4 their raw kurtosis::

    PSR(SR*) = Φ( (SR − SR*) √(T − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )

Expected maximum Sharpe of N independent trials whose Sharpe ratios have variance V across trials and
true Sharpe 0 (2014, eq. 1; γ = Euler–Mascheroni constant, e = Euler's number)::

    SR0 = √V · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) )

DSR = PSR(SR0). With N = 1 there is no selection, and SR0 is 0 exactly (the formula's Φ⁻¹(0) would
be −∞; the expected maximum of one zero-mean draw is 0).

PBO by combinatorially symmetric cross-validation (CSCV; Bailey, Borwein, López de Prado & Zhu 2017,
section 2): the T × N performance matrix (rows = observations in time order, columns = trials) is cut
into S equal blocks of consecutive rows; for each of the C(S, S/2) ways to choose S/2 blocks as the
in-sample (IS) set, the other S/2 blocks are the out-of-sample (OOS) set::

    n*  = argmax_n  metric_IS[n]
    ω_c = rank of metric_OOS[n*] among the N OOS metrics / (N + 1)    (rank 1 = worst, N = best)
    λ_c = ln( ω_c / (1 − ω_c) )
    PBO = #{c : λ_c ≤ 0} / C(S, S/2)

Conventions (where they bite)
-----------------------------
- Sharpe ratios here are **per observation**, not annualised: mean / standard deviation (ddof=1) of the
  per-bar returns, risk-free rate 0. To use annualised figures divide the Sharpe by √(periods per year)
  and the variance of Sharpe ratios by periods per year (the variance scales with the square).
- **Kurtosis is raw (non-excess)**, as in the papers: a normal distribution has kurtosis 3, skewness 0.
  Passing excess kurtosis is the common mistake; any kurtosis below 1 + skewness² is impossible and
  raises, which catches it for near-symmetric returns (excess 0 for a normal).
- Skewness and kurtosis computed from returns here are the plain moment ratios m3 / m2^1.5 and
  m4 / m2² (scipy's biased estimators), the variance of trial Sharpes is the sample variance (ddof=1).
- The Sharpe ratios of all trials must come from the same returns frequency as the best trial's
  returns; they include the best trial itself (N counts every trial tried).
- CSCV rows: T mod S rows at the **end** are dropped so the blocks have equal size;
  ``BacktestOverfittingResult.rows_dropped`` says how many. (pypbo drops them at the start instead.)
- Ranks and ties: the IS winner n* is the lowest-numbered trial among IS ties (numpy ``argmax``);
  the OOS rank is the average rank among OOS ties (``scipy.stats.rankdata`` "average"), so ω is in
  [1/(N+1), N/(N+1)] and λ is always finite. These are also the conventions of the reference
  implementations (R package ``pbo``: ``which.max`` and ``rank``; Python ``pypbo``: ``argmax`` and
  ``rankdata``), but R's ``pbo`` divides the rank by N instead of the paper's N + 1.
- λ = 0 (the winner lands exactly on the OOS median, possible only with an odd N or with ties) counts as
  overfit, as in both reference implementations. So for trials that are pure noise, the expected PBO is
  1/2 for an even N but (N + 1) / (2N) for an odd N (2/3 for N = 3); and N identical trials give PBO 1.
- The default CSCV metric is the per-observation Sharpe of each column (``sharpe_of_columns``),
  computed from per-block moments so that C(16, 8) = 12,870 combinations cost O(T·N) + O(C·S·N), not
  O(C·T·N). A column with standard deviation ≤ ``MIN_DEVIATION`` in a half has Sharpe 0 if its mean is
  also that small (a trial that did not trade), else ±inf (a constant gain or loss). A custom ``metric``
  receives the IS (or OOS) rows of all trials, shape (rows, N), in time order, and returns N values;
  it must be higher-is-better. PBO depends only on the metric's ordering, so any strictly increasing
  transform of a metric gives the same PBO; a monotone transform of the *returns* does not preserve the
  Sharpe ordering and so may change PBO.

References
----------
- Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier". Journal of Risk
  15(2), 3–44. SSRN 1821643. (PSR)
- Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality". Journal of Portfolio Management 40(5), 94–107.
  SSRN 2460551. (DSR, expected maximum Sharpe)
- Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017). "The Probability of Backtest
  Overfitting". Journal of Computational Finance 20(4), 39–69. SSRN 2326253. (PBO, CSCV)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats

EULER_MASCHERONI: Final = float(np.euler_gamma)
# Standard deviations (and means) at or below this are treated as zero: a Sharpe over them would be float
# noise (the same threshold as qa_engine.reporting.statistics).
MIN_DEVIATION: Final = 1e-12
# Upper bound on the float64 elements of one vectorised chunk of CSCV combinations (about 32 MB).
_CHUNK_ELEMENTS: Final = 4_000_000

# Float slack on the bound kurtosis >= 1 + skewness² (met with equality by two-point returns).
_MOMENT_SLACK: Final = 1e-9

Metric = Callable[[np.ndarray], np.ndarray]


# --- deflated Sharpe ratio ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeflatedSharpeResult:
    """Every input and intermediate of one deflated Sharpe ratio (all Sharpes per observation)."""

    sharpe: float  # SR of the selected trial's returns
    expected_max_sharpe: float  # SR0: expected best Sharpe of n_trials worthless trials
    n_trials: int  # N, every trial tried, the selected one included
    trial_sharpe_variance: float  # V: sample variance (ddof=1) of the trials' Sharpe ratios
    n_observations: int  # T: returns of the selected trial
    skewness: float  # γ3 of the selected trial's returns
    kurtosis: float  # γ4, raw (normal = 3)
    deflated_sharpe_ratio: float  # DSR = PSR(SR0), a probability


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark_sharpe: float, n_observations: int, skewness: float, kurtosis: float
) -> float:
    """P(true Sharpe > ``benchmark_sharpe``) given a per-observation ``sharpe`` estimated from
    ``n_observations`` returns with this ``skewness`` and raw ``kurtosis`` (normal = 3).

    Φ((SR − SR*)·√(T − 1) / √(1 − γ3·SR + (γ4 − 1)/4·SR²)). Raises ValueError for T < 2, a non-finite
    input, or a kurtosis below 1 + skewness² (impossible for any distribution: usually excess kurtosis
    passed as raw)."""
    _check_finite(sharpe=sharpe, benchmark_sharpe=benchmark_sharpe, skewness=skewness, kurtosis=kurtosis)
    if n_observations < 2:
        raise ValueError(f"n_observations must be at least 2, got {n_observations}")
    if kurtosis < 1.0 + skewness**2 - _MOMENT_SLACK:
        raise ValueError(
            f"kurtosis {kurtosis} is below 1 + skewness² = {1.0 + skewness**2}, which no distribution has: "
            "pass the raw kurtosis (normal = 3), not the excess kurtosis (normal = 0)"
        )
    variance_term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance_term <= 0.0:  # only on the boundary kurtosis == 1 + skewness² (a two-point distribution)
        raise ValueError(
            f"the Sharpe estimate has no variance for sharpe={sharpe}, skewness={skewness}, "
            f"kurtosis={kurtosis}: the PSR is undefined"
        )
    z = (sharpe - benchmark_sharpe) * math.sqrt(n_observations - 1) / math.sqrt(variance_term)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` independent trials with true Sharpe 0 whose Sharpe
    estimates have variance ``sharpe_variance`` across trials (same units: per observation).

    √V·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))); exactly 0 for N = 1."""
    _check_finite(sharpe_variance=sharpe_variance)
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if sharpe_variance < 0.0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    max_z = (1.0 - EULER_MASCHERONI) * stats.norm.ppf(1.0 - 1.0 / n_trials) + EULER_MASCHERONI * (
        stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    )
    return float(math.sqrt(sharpe_variance) * max_z)


def deflated_sharpe_ratio(
    sharpe: float,
    *,
    n_trials: int,
    sharpe_variance: float,
    n_observations: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """PSR of the selected trial's per-observation ``sharpe`` against ``expected_max_sharpe(n_trials,
    sharpe_variance)``: the probability that its true Sharpe beats the best of ``n_trials`` worthless
    trials. Kurtosis is raw (normal = 3)."""
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, benchmark, n_observations, skewness, kurtosis)


def deflated_sharpe_from_returns(returns: np.ndarray, trial_sharpes: np.ndarray) -> DeflatedSharpeResult:
    """DSR of the selected trial from its per-bar ``returns`` and the per-bar Sharpe ratios of every
    trial of the sweep (``trial_sharpes``, the selected one included, computed as mean / std(ddof=1)
    of the same kind of returns).

    N = len(trial_sharpes); V = their sample variance (0 for a single trial); SR, skewness and raw
    kurtosis from ``returns``. Raises ValueError on NaN or infinite values, fewer than 2 returns, or
    returns without variation (a Sharpe ratio needs a standard deviation)."""
    returns = np.asarray(returns, dtype=float)
    trial_sharpes = np.asarray(trial_sharpes, dtype=float)
    if returns.ndim != 1 or returns.size < 2:
        raise ValueError(f"returns must be 1-D with at least 2 values, got shape {returns.shape}")
    if trial_sharpes.ndim != 1 or trial_sharpes.size < 1:
        raise ValueError(f"trial_sharpes must be 1-D with at least 1 value, got shape {trial_sharpes.shape}")
    _check_all_finite(returns, "returns")
    _check_all_finite(trial_sharpes, "trial_sharpes")
    std = float(np.std(returns, ddof=1))
    if std <= MIN_DEVIATION:
        raise ValueError(f"returns have standard deviation {std}: the Sharpe ratio is undefined")
    sharpe = float(np.mean(returns)) / std
    skewness = float(stats.skew(returns, bias=True))
    kurtosis = float(stats.kurtosis(returns, fisher=False, bias=True))
    n_trials = int(trial_sharpes.size)
    variance = float(np.var(trial_sharpes, ddof=1)) if n_trials > 1 else 0.0
    dsr = deflated_sharpe_ratio(
        sharpe,
        n_trials=n_trials,
        sharpe_variance=variance,
        n_observations=int(returns.size),
        skewness=skewness,
        kurtosis=kurtosis,
    )
    return DeflatedSharpeResult(
        sharpe=sharpe,
        expected_max_sharpe=expected_max_sharpe(n_trials, variance),
        n_trials=n_trials,
        trial_sharpe_variance=variance,
        n_observations=int(returns.size),
        skewness=skewness,
        kurtosis=kurtosis,
        deflated_sharpe_ratio=dsr,
    )


# --- probability of backtest overfitting ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BacktestOverfittingResult:
    """CSCV outcome. Arrays have one entry per combination c, in the order of
    ``itertools.combinations(range(n_splits), n_splits // 2)`` (the IS block indices), read-only."""

    pbo: float  # share of combinations with logit <= 0
    probability_of_loss: float  # share of combinations where the IS winner's OOS metric < loss_threshold
    n_combinations: int  # C(n_splits, n_splits / 2)
    n_splits: int  # S
    rows_per_split: int  # rows in each block
    rows_dropped: int  # T mod S rows cut from the end of the matrix
    in_sample_splits: np.ndarray  # (C, S/2) int: the IS blocks of each combination
    best_trial: np.ndarray  # (C,) int: n*, the IS winner (column index)
    in_sample_metric: np.ndarray  # (C,): the IS winner's IS metric
    out_of_sample_metric: np.ndarray  # (C,): the IS winner's OOS metric (degradation pairs with the above)
    relative_rank: np.ndarray  # (C,): ω = OOS rank of n* / (N + 1)
    logits: np.ndarray  # (C,): λ = ln(ω / (1 − ω))


def sharpe_of_columns(returns: np.ndarray) -> np.ndarray:
    """Per-observation Sharpe ratio of each column of ``returns`` (rows, N): mean / std(ddof=1), with
    the degenerate columns of the module docstring (flat: 0; constant non-zero: ±inf). The default CSCV
    metric computes the same values from per-block moments."""
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 2 or returns.shape[0] < 2:
        raise ValueError(f"returns must be 2-D with at least 2 rows, got shape {returns.shape}")
    mean = returns.mean(axis=0)  # (N,)
    variance = returns.var(axis=0, ddof=1)  # (N,)
    return _sharpe_from_moments(mean, variance)


def pbo_cscv(
    performance: np.ndarray,
    n_splits: int = 16,
    metric: Metric | None = None,
    *,
    loss_threshold: float = 0.0,
) -> BacktestOverfittingResult:
    """Probability of backtest overfitting of a sweep by combinatorially symmetric cross-validation.

    ``performance``: (T, N), one row per observation in time order (per-bar returns), one column per
    trial. ``n_splits``: S, even, at least 2 (the paper uses 16: C(16, 8) = 12,870 combinations).
    ``metric``: None for the per-observation Sharpe of each column (fast path), or a callable mapping the
    (rows, N) IS or OOS matrix to N higher-is-better values (called twice per combination).
    ``loss_threshold``: ``probability_of_loss`` counts OOS metrics strictly below it (0 for Sharpe).

    Raises ValueError for a non-2-D matrix, fewer than 2 trials, NaN or infinite entries (naming the
    first), an odd or too large ``n_splits`` (each half needs at least 2 rows), or a metric that
    returns NaN or the wrong shape."""
    performance = np.asarray(performance, dtype=float)
    if performance.ndim != 2:
        raise ValueError(f"performance must be 2-D (observations x trials), got shape {performance.shape}")
    n_rows, n_trials = performance.shape
    if n_trials < 2:
        raise ValueError(f"PBO ranks trials against each other: need at least 2 trials, got {n_trials}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even integer >= 2, got {n_splits}")
    rows_per_split = n_rows // n_splits
    if rows_per_split * (n_splits // 2) < 2:
        raise ValueError(
            f"{n_rows} rows in {n_splits} splits leave fewer than 2 rows per half: use fewer splits"
        )
    _check_all_finite(performance, "performance")
    rows_used = rows_per_split * n_splits
    blocks = performance[:rows_used].reshape(n_splits, rows_per_split, n_trials)  # (S, k, N)

    half = n_splits // 2
    in_sample_splits = np.array(list(itertools.combinations(range(n_splits), half)), dtype=np.intp)
    # complement of each combination, in ascending block order: (C, S/2)
    in_sample_mask = np.zeros((len(in_sample_splits), n_splits), dtype=bool)
    np.put_along_axis(in_sample_mask, in_sample_splits, True, axis=1)
    out_of_sample_splits = np.nonzero(~in_sample_mask)[1].reshape(len(in_sample_splits), half)

    chunks = (
        _sharpe_chunks(blocks, in_sample_splits, out_of_sample_splits)
        if metric is None
        else _metric_chunks(blocks, in_sample_splits, out_of_sample_splits, metric)
    )
    best, is_best, oos_best, rank = [], [], [], []
    for start, is_metric, oos_metric in chunks:  # (c, N) each
        _check_metric(is_metric, oos_metric, in_sample_splits, start)
        n_star = np.argmax(is_metric, axis=1)  # (c,): first of IS ties
        rows = np.arange(len(n_star))
        winner_oos = oos_metric[rows, n_star]  # (c,)
        below = (oos_metric < winner_oos[:, None]).sum(axis=1)
        equal = (oos_metric == winner_oos[:, None]).sum(axis=1)  # n* itself included
        best.append(n_star)
        is_best.append(is_metric[rows, n_star])
        oos_best.append(winner_oos)
        rank.append(below + (equal + 1) / 2.0)  # average rank among OOS ties, 1 = worst

    oos_rank = np.concatenate(rank)
    logits = np.log(oos_rank / (n_trials + 1 - oos_rank))  # ln(ω / (1 − ω)) with ω = rank / (N + 1)
    out_of_sample_metric = np.concatenate(oos_best)
    result = BacktestOverfittingResult(
        pbo=float(np.mean(logits <= 0.0)),
        probability_of_loss=float(np.mean(out_of_sample_metric < loss_threshold)),
        n_combinations=len(in_sample_splits),
        n_splits=n_splits,
        rows_per_split=rows_per_split,
        rows_dropped=n_rows - rows_used,
        in_sample_splits=in_sample_splits,
        best_trial=np.concatenate(best),
        in_sample_metric=np.concatenate(is_best),
        out_of_sample_metric=out_of_sample_metric,
        relative_rank=oos_rank / (n_trials + 1),
        logits=logits,
    )
    for array in (
        result.in_sample_splits,
        result.best_trial,
        result.in_sample_metric,
        result.out_of_sample_metric,
        result.relative_rank,
        result.logits,
    ):
        array.flags.writeable = False
    return result


# --- helpers --------------------------------------------------------------------------------------------


def _sharpe_chunks(blocks: np.ndarray, in_sample: np.ndarray, out_of_sample: np.ndarray):
    """Yield (first combination, IS Sharpe (c, N), OOS Sharpe (c, N)) from per-block moments."""
    n_splits, rows_per_split, n_trials = blocks.shape
    block_mean = blocks.mean(axis=1)  # (S, N)
    block_m2 = ((blocks - block_mean[:, None, :]) ** 2).sum(axis=1)  # (S, N): centred, no cancellation
    half = n_splits // 2
    chunk = max(1, _CHUNK_ELEMENTS // (half * n_trials))
    for start in range(0, len(in_sample), chunk):
        sharpes = []
        for splits in (in_sample[start : start + chunk], out_of_sample[start : start + chunk]):
            means = block_mean[splits]  # (c, S/2, N)
            mean = means.mean(axis=1)  # (c, N): equal block sizes, so the mean of block means
            # pooled sum of squares: within blocks + between block means (Chan et al.'s parallel update)
            m2 = block_m2[splits].sum(axis=1) + rows_per_split * ((means - mean[:, None, :]) ** 2).sum(axis=1)
            sharpes.append(_sharpe_from_moments(mean, m2 / (half * rows_per_split - 1)))
        yield start, sharpes[0], sharpes[1]


def _metric_chunks(blocks: np.ndarray, in_sample: np.ndarray, out_of_sample: np.ndarray, metric: Metric):
    """Yield (combination, IS metric (1, N), OOS metric (1, N)) by calling ``metric`` on the rows."""
    n_trials = blocks.shape[2]
    for index, (is_splits, oos_splits) in enumerate(zip(in_sample, out_of_sample, strict=True)):
        values = []
        for splits in (is_splits, oos_splits):
            rows = blocks[splits].reshape(-1, n_trials)  # (S/2 * k, N), blocks in time order
            value = np.asarray(metric(rows), dtype=float)
            if value.shape != (n_trials,):
                raise ValueError(f"metric must return {n_trials} values (one per trial), got {value.shape}")
            values.append(value[None, :])
        yield index, values[0], values[1]


def _sharpe_from_moments(mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    std = np.sqrt(np.maximum(variance, 0.0))
    flat = std <= MIN_DEVIATION
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / std
    constant = np.where(np.abs(mean) <= MIN_DEVIATION, 0.0, np.copysign(np.inf, mean))
    return np.where(flat, constant, sharpe)


def _check_metric(is_metric: np.ndarray, oos_metric: np.ndarray, in_sample: np.ndarray, start: int) -> None:
    for name, values in (("in-sample", is_metric), ("out-of-sample", oos_metric)):
        bad = np.argwhere(np.isnan(values))
        if bad.size:
            combination, trial = bad[0]
            splits = in_sample[start + combination].tolist()
            raise ValueError(f"metric is NaN for trial {trial}, {name}, in-sample splits {splits}")


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


def _check_all_finite(values: np.ndarray, name: str) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        first = tuple(bad[0])
        where = f"row {first[0]}, column {first[1]}" if values.ndim == 2 else f"index {first[0]}"
        raise ValueError(f"{name} has a non-finite value ({values[first]}) at {where}")
