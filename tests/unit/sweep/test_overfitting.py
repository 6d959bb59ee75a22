"""Overfitting statistics (qa_engine.sweep.overfitting): deflated Sharpe ratio and PBO by CSCV.

Where the expected figures come from, test by test:

- Reference figures (someone else computed them):
  ``esvhd/pypbo`` at commit ddbc63143dad5cec3d8e5711b1265d9dc963ffce, file ``tests/test_pbo.py``
  (the same tests are in ``pypbo/tests/pbo_tests.py`` at d5464572f90b22c53f5e2d422172b0051f9918e5):
  ``test_dsr`` ("Example from The Deflated Sharpe Ratio": N = 100, annualised V = 0.5, T = 1250,
  skew -3, kurtosis 10, annualised SR 2.5, 250 days a year -> 0.90039683444939034), ``test_psr``
  ("Example from The Sharpe Ratio Efficient Frontier" -> 0.91323430688486018) and
  ``test_expected_max`` (2.5306028932016846 for N = 100). The DSR paper's section "A numerical
  example" prints DSR 0.9004; that printed figure was read second-hand (pypbo's test and other
  implementations' tests quoting it), not from the paper's text, which was not available here.
- The PBO reference matrices: the outputs of pypbo's ``pbo()`` (same commit; run here on numpy 2.4.6,
  scipy 1.17.1, statsmodels 0.15.0, seaborn 0.13.2, metric mean / std(ddof=1), threshold 0) on
  ``_park_miller_matrix``, a matrix any language can regenerate exactly (integer LCG, no library RNG).
  No published PBO figure (paper, R package ``pbo`` vignette or tests) is reproducible without R's RNG.
- Constructed (the expected value follows from the construction, derived in each docstring): the
  dominant trial (PBO 0), the mirrored trials (PBO 1), the noise baselines, the hand-ranked tie case,
  the two-point returns, and the brute-force CSCV written independently below.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate
from scipy import stats

from qa_engine.sweep.overfitting import DeflatedSharpeResult
from qa_engine.sweep.overfitting import deflated_sharpe_from_returns
from qa_engine.sweep.overfitting import deflated_sharpe_ratio
from qa_engine.sweep.overfitting import expected_max_sharpe
from qa_engine.sweep.overfitting import pbo_cscv
from qa_engine.sweep.overfitting import probabilistic_sharpe_ratio
from qa_engine.sweep.overfitting import sharpe_of_columns

PAPER_SHARPE = 2.5 / math.sqrt(250)  # annualised 2.5, daily, 250 days a year
PAPER_VARIANCE = 0.5 / 250  # annualised variance of the trials' Sharpes, 1/2: variances scale with 250


def column_means(rows: np.ndarray) -> np.ndarray:
    return rows.mean(axis=0)


# --- deflated Sharpe ratio: reference figures ---------------------------------------------------------


def test_deflated_sharpe_reproduces_the_papers_numerical_example() -> None:
    """Bailey & López de Prado (2014), "A numerical example", as encoded by pypbo ``test_dsr``
    (esvhd/pypbo@ddbc631, tests/test_pbo.py): expected 0.90039683444939034; the paper prints 0.9004."""
    dsr = deflated_sharpe_ratio(
        PAPER_SHARPE,
        n_trials=100,
        sharpe_variance=PAPER_VARIANCE,
        n_observations=1250,
        skewness=-3.0,
        kurtosis=10.0,
    )
    assert dsr == pytest.approx(0.90039683444939034, abs=1e-12)
    assert round(dsr, 4) == 0.9004


def test_expected_max_sharpe_of_100_trials_matches_pypbo() -> None:
    """pypbo ``test_expected_max`` (esvhd/pypbo@ddbc631, tests/test_pbo.py): E[max] of 100 standard
    normals by the paper's approximation = 2.5306028932016846; V scales it by sqrt(V)."""
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306028932016846, abs=1e-12)
    assert expected_max_sharpe(100, PAPER_VARIANCE) == pytest.approx(
        math.sqrt(PAPER_VARIANCE) * 2.5306028932016846, abs=1e-12
    )


def test_probabilistic_sharpe_reproduces_the_efficient_frontier_example() -> None:
    """pypbo ``test_psr`` (esvhd/pypbo@ddbc631, tests/test_pbo.py), "Example from The Sharpe Ratio
    Efficient Frontier" (Bailey & López de Prado 2012): annualised SR 1.585 over 24 monthly returns,
    skewness -2.448, raw kurtosis 10.164, benchmark 0 -> 0.91323430688486018."""
    psr = probabilistic_sharpe_ratio(1.585 / math.sqrt(12), 0.0, 24, -2.448, 10.164)
    assert psr == pytest.approx(0.91323430688486018, abs=1e-12)


# --- deflated Sharpe ratio: constructed checks --------------------------------------------------------


def test_probabilistic_sharpe_of_normal_returns_uses_raw_kurtosis_three() -> None:
    """Constructed: for normal returns (skewness 0, raw kurtosis 3) the variance term is 1 + SR²/2, so
    SR 0.05 over T = 1001 gives z = 0.05·sqrt(1000)/sqrt(1.00125) = 1.5801515...; passing the excess
    kurtosis 0 instead is rejected (no distribution has kurtosis < 1 + skewness²)."""
    z = 0.05 * math.sqrt(1000) / math.sqrt(1.00125)
    assert z == pytest.approx(1.5801515, abs=1e-7)
    assert probabilistic_sharpe_ratio(0.05, 0.0, 1001, 0.0, 3.0) == pytest.approx(
        NormalDist().cdf(z), abs=1e-15
    )
    with pytest.raises(ValueError, match="raw kurtosis"):
        probabilistic_sharpe_ratio(0.05, 0.0, 1001, 0.0, 0.0)
    with pytest.raises(ValueError, match="raw kurtosis"):
        probabilistic_sharpe_ratio(0.05, 0.0, 1001, 2.0, 4.0)  # 4 < 1 + 2²


def test_probabilistic_sharpe_at_the_benchmark_is_one_half_and_rises_with_length() -> None:
    assert probabilistic_sharpe_ratio(0.1, 0.1, 500, -1.0, 6.0) == 0.5
    short = probabilistic_sharpe_ratio(0.1, 0.0, 100, -1.0, 6.0)
    long = probabilistic_sharpe_ratio(0.1, 0.0, 1000, -1.0, 6.0)
    assert 0.5 < short < long < 1.0
    # negative skew and fat tails widen the Sharpe's error band: a lower PSR than for normal returns
    assert short < probabilistic_sharpe_ratio(0.1, 0.0, 100, 0.0, 3.0)


def test_probabilistic_sharpe_is_calibrated_under_the_null() -> None:
    """Constructed: 4,000 normal series of 250 returns with true Sharpe 0 (seed 11): PSR(0) > 0.95 should
    happen 5 % of the time; the tolerance 0.012 is 3.5 standard errors (sqrt(0.05·0.95/4000) = 0.0034).
    A formula with sqrt(T) in the wrong place or excess kurtosis would miss it."""
    returns = np.random.default_rng(11).normal(0.0, 0.01, size=(4000, 250))  # (series, T)
    sharpe = returns.mean(axis=1) / returns.std(axis=1, ddof=1)
    skewness = stats.skew(returns, axis=1)
    kurtosis = stats.kurtosis(returns, axis=1, fisher=False)
    psr = [
        probabilistic_sharpe_ratio(sr, 0.0, 250, g3, g4)
        for sr, g3, g4 in zip(sharpe, skewness, kurtosis, strict=True)
    ]
    assert np.mean(np.array(psr) > 0.95) == pytest.approx(0.05, abs=0.012)


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_sharpe_approximates_the_exact_expected_maximum(n_trials: int) -> None:
    """Constructed: the exact E[max of N standard normals] = ∫ x·N·φ(x)·Φ(x)^(N-1) dx by quadrature; the
    paper's approximation is within 3 % for N >= 10 (2.4 % at 10, 0.9 % at 100, 0.4 % at 1000)."""
    exact, _ = integrate.quad(
        lambda x: x * n_trials * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n_trials - 1), -10, 10, limit=200
    )
    assert expected_max_sharpe(n_trials, 1.0) == pytest.approx(exact, rel=0.03)
    assert expected_max_sharpe(n_trials, 4.0) == pytest.approx(2.0 * expected_max_sharpe(n_trials, 1.0))


def test_one_trial_has_no_selection_and_deflation_grows_with_trials() -> None:
    assert expected_max_sharpe(1, 0.3) == 0.0
    kwargs = dict(sharpe_variance=PAPER_VARIANCE, n_observations=1250, skewness=-3.0, kurtosis=10.0)
    single = deflated_sharpe_ratio(PAPER_SHARPE, n_trials=1, **kwargs)
    assert single == probabilistic_sharpe_ratio(PAPER_SHARPE, 0.0, 1250, -3.0, 10.0)
    values = [deflated_sharpe_ratio(PAPER_SHARPE, n_trials=n, **kwargs) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in itertools.pairwise(values))
    # no dispersion across trials: every trial had the same Sharpe, nothing to deflate
    assert deflated_sharpe_ratio(PAPER_SHARPE, n_trials=100, **{**kwargs, "sharpe_variance": 0.0}) == single


def test_deflated_sharpe_input_errors() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(10, -0.1)
    with pytest.raises(ValueError, match="n_observations"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="sharpe must be finite"):
        probabilistic_sharpe_ratio(math.nan, 0.0, 100, 0.0, 3.0)


def test_deflated_sharpe_from_returns_with_known_moments() -> None:
    """Constructed: returns mu + s·(-2, 0, 1, 1) repeated 250 times (T = 1000, mu = 0.0005, s = 0.01). The
    pattern has mean 0, m2 = 6/4, m3 = -6/4, m4 = 18/4, so skewness m3/m2^1.5 = -sqrt(2/3), raw kurtosis
    m4/m2² = 2 (the bias-corrected estimators would give other values), and a Sharpe of
    mu / (s·sqrt(1.5)·sqrt(T / (T - 1))) with the ddof=1 standard deviation. Trials' Sharpes 0.1, 0.0,
    -0.1, 0.2: N = 4, sample variance V = 0.05 / 3."""
    returns = 0.0005 + 0.01 * np.tile([-2.0, 0.0, 1.0, 1.0], 250)
    trial_sharpes = np.array([0.1, 0.0, -0.1, 0.2])

    result = deflated_sharpe_from_returns(returns, trial_sharpes)

    assert isinstance(result, DeflatedSharpeResult)
    sharpe = 0.05 / math.sqrt(1.5 * 1000 / 999)
    assert result.sharpe == pytest.approx(sharpe, rel=1e-12)
    assert result.skewness == pytest.approx(-math.sqrt(2 / 3), rel=1e-9)
    assert result.kurtosis == pytest.approx(2.0, rel=1e-9)
    assert (result.n_trials, result.n_observations) == (4, 1000)
    assert result.trial_sharpe_variance == pytest.approx(0.05 / 3, rel=1e-12)
    assert result.expected_max_sharpe == pytest.approx(expected_max_sharpe(4, 0.05 / 3), rel=1e-12)
    # variance term 1 - γ3·SR + (2 - 1)/4·SR²
    variance_term = 1 + math.sqrt(2 / 3) * sharpe + sharpe**2 / 4
    z = (sharpe - result.expected_max_sharpe) * math.sqrt(999) / math.sqrt(variance_term)
    assert result.deflated_sharpe_ratio == pytest.approx(NormalDist().cdf(z), abs=1e-12)
    with pytest.raises(AttributeError):
        result.sharpe = 1.0  # type: ignore[misc]


def test_two_point_returns_sit_on_the_kurtosis_bound_and_are_accepted() -> None:
    """Constructed: returns alternating mu ± a have skewness 0 and raw kurtosis 1, exactly the bound
    1 + skewness² (met only by two-point distributions); float rounding must not reject them."""
    result = deflated_sharpe_from_returns(0.001 + 0.01 * np.tile([1.0, -1.0], 500), np.array([0.1, 0.0]))
    assert result.kurtosis == pytest.approx(1.0, rel=1e-9)
    assert 0.0 < result.deflated_sharpe_ratio < 1.0


def test_deflated_sharpe_from_returns_rejects_flat_or_broken_input() -> None:
    with pytest.raises(ValueError, match="standard deviation"):
        deflated_sharpe_from_returns(np.zeros(50), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="index 3"):
        deflated_sharpe_from_returns(np.array([0.1, 0.2, 0.3, np.nan]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="trial_sharpes"):
        deflated_sharpe_from_returns(np.array([0.1, 0.2, 0.3]), np.array([]))
    # one trial: V is 0 (not NaN), SR0 is 0
    single = deflated_sharpe_from_returns(np.array([0.01, -0.005, 0.02, 0.0]), np.array([0.4]))
    assert single.trial_sharpe_variance == 0.0 and single.expected_max_sharpe == 0.0


# --- PBO: reference figures ---------------------------------------------------------------------------


def _park_miller_matrix(n_rows: int, n_trials: int, seed: int = 20240607) -> np.ndarray:
    """Park & Miller's minimal standard LCG (x <- 16807·x mod 2^31 - 1), filled row-major as
    x / (2^31 - 1) - 0.5, plus a drift from -0.02 to 0.05 across the trials (linspace)."""
    state, values = seed, []
    for _ in range(n_rows * n_trials):
        state = 16807 * state % 2147483647
        values.append(state / 2147483647 - 0.5)
    return np.array(values).reshape(n_rows, n_trials) + np.linspace(-0.02, 0.05, n_trials)


# pypbo.pbo(_park_miller_matrix(T, N), S=S, metric_func=mean/std(ddof=1), threshold=0) at
# esvhd/pypbo@ddbc631: PBO, probability of OOS loss, n* per combination (``rn``), and the OOS rank of n*
# per combination (pypbo's ``logits`` are logit(rank / (N + 1)); the ranks are written here as digits),
# and the first three (IS, OOS) metric pairs (``R_n_star``, ``R_bar_n_star``).
PYPBO_CASES = [
    dict(
        shape=(96, 6),
        n_splits=8,
        pbo=0.22857142857142856,
        probability_of_loss=0.17142857142857143,
        best="4451445145145515553555555554555555545535545555545555555553533555555555",
        ranks="4463336335325636661666566661566466446626635666636665666561511556555655",
        in_sample=[0.34135058708903865, 0.31670717525829284, 0.36918741512349623],
        out_of_sample=[0.03046560892823767, 0.043320880447270886, 0.2822367923420887],
    ),
    dict(
        shape=(120, 5),
        n_splits=6,
        pbo=0.55,  # N odd: the four combinations with rank 3 of 5 (logit 0) count as overfit
        probability_of_loss=0.15,
        best="44442423244443443333",
        ranks="44342513155242542331",
        in_sample=[0.35231980862973167, 0.2935428688253899, 0.35179178244648457],
        out_of_sample=[0.041795031135324234, 0.104866836444507, 0.05766540060983209],
    ),
]


@pytest.mark.parametrize("case", PYPBO_CASES, ids=["96x6_S8", "120x5_S6"])
def test_pbo_matches_pypbo_on_a_reproducible_matrix(case: dict) -> None:
    """Reference: the figures pypbo (esvhd/pypbo@ddbc631, pypbo/pbo.py ``pbo``) computed on the same
    matrix; see PYPBO_CASES. Both enumerate combinations in itertools order."""
    n_rows, n_trials = case["shape"]
    result = pbo_cscv(_park_miller_matrix(n_rows, n_trials), n_splits=case["n_splits"])

    ranks = np.array([int(d) for d in case["ranks"]], dtype=float)
    assert result.n_combinations == math.comb(case["n_splits"], case["n_splits"] // 2) == len(ranks)
    assert result.rows_dropped == 0
    assert result.pbo == pytest.approx(case["pbo"], abs=1e-15)
    assert result.probability_of_loss == pytest.approx(case["probability_of_loss"], abs=1e-15)
    assert result.best_trial.tolist() == [int(d) for d in case["best"]]
    assert result.relative_rank * (n_trials + 1) == pytest.approx(ranks, abs=1e-12)
    assert result.logits == pytest.approx(np.log(ranks / (n_trials + 1 - ranks)), abs=1e-12)
    assert result.in_sample_metric[:3] == pytest.approx(case["in_sample"], abs=1e-12)
    assert result.out_of_sample_metric[:3] == pytest.approx(case["out_of_sample"], abs=1e-12)


# --- PBO: constructed checks --------------------------------------------------------------------------


def test_pbo_ties_rank_convention_and_dropped_rows_by_hand() -> None:
    """Constructed, S = 2, metric = column mean, N = 3. Block 0 means (2, 2, 1), block 1 means (0, 3, 0);
    the fifth row is the remainder (5 mod 2) and is dropped from the end (were it used, or the first row
    dropped instead, the means would change).
    - IS block 0: trials 0 and 1 tie at 2, n* = 0 (lowest index). OOS block 1: trial 0's 0 ties with
      trial 2 for ranks 1 and 2 -> average 1.5; ω = 1.5/4, λ = ln(1.5/2.5) < 0.
    - IS block 1: n* = 1 (3). OOS block 0: its 2 ties with trial 0 for ranks 2 and 3 -> 2.5;
      ω = 2.5/4, λ = ln(2.5/1.5) > 0.
    PBO = 1/2; no OOS mean is below 0, one (0) is below 1."""
    performance = np.array(
        [[2, 2, 1], [2, 2, 1], [0, 3, 0], [0, 3, 0], [100, -100, 50]],
        dtype=float,
    )
    result = pbo_cscv(performance, n_splits=2, metric=column_means)

    assert (result.rows_per_split, result.rows_dropped, result.n_combinations) == (2, 1, 2)
    assert result.in_sample_splits.tolist() == [[0], [1]]
    assert result.best_trial.tolist() == [0, 1]
    assert result.relative_rank.tolist() == [1.5 / 4, 2.5 / 4]
    assert result.logits == pytest.approx([math.log(1.5 / 2.5), math.log(2.5 / 1.5)], abs=1e-15)
    assert result.in_sample_metric.tolist() == [2.0, 3.0]
    assert result.out_of_sample_metric.tolist() == [0.0, 2.0]
    assert result.pbo == 0.5
    assert result.probability_of_loss == 0.0
    assert (
        pbo_cscv(performance, n_splits=2, metric=column_means, loss_threshold=1.0).probability_of_loss == 0.5
    )


def test_pbo_is_zero_when_one_trial_dominates_every_row() -> None:
    """Constructed: trial 3 earns 1.0 more than any other in every row (noise ~0.01, seed 3), so it wins
    every IS half and ranks N of N OOS: ω = N/(N+1), λ = ln N in every combination, PBO = 0 exactly."""
    performance = np.random.default_rng(3).normal(0.0, 0.01, size=(320, 8))
    performance[:, 3] += 1.0
    result = pbo_cscv(performance, n_splits=16)

    assert result.n_combinations == 12_870
    assert result.pbo == 0.0 and result.probability_of_loss == 0.0
    assert (result.best_trial == 3).all()
    assert result.logits == pytest.approx(np.full(12_870, math.log(8)), abs=1e-12)


def test_pbo_is_one_when_the_in_sample_winner_is_always_the_out_of_sample_loser() -> None:
    """Constructed: trial 1 = -trial 0, and trial 0's block means are 1, 2, 4, ..., 64, -127 (x 0.001), which
    sum to 0, and no 4 of which sum to 0 (without -127 the sum is > 0; with it, at most 64+32+16-127 < 0).
    So each half's mean is minus the other half's: the trial with the positive IS Sharpe has a negative OOS
    Sharpe and its mirror the positive one. n* ranks 1 of 2 OOS: ω = 1/3, λ = ln(1/2), PBO = 1.
    Within each block, noise e then -e keeps the block mean exact."""
    block_means = 0.001 * np.array([1, 2, 4, 8, 16, 32, 64, -127], dtype=float)
    noise = np.random.default_rng(5).normal(0.0, 0.01, size=(8, 5))
    rows = block_means[:, None] + np.concatenate([noise, -noise], axis=1)  # (S, 10 rows per block)
    trial = rows.reshape(-1)
    result = pbo_cscv(np.column_stack([trial, -trial]), n_splits=8)

    assert result.pbo == 1.0 and result.probability_of_loss == 1.0
    assert result.logits == pytest.approx(np.full(70, math.log(0.5)), abs=1e-12)
    assert (result.in_sample_metric > 0).all() and (result.out_of_sample_metric < 0).all()


def test_pbo_is_one_for_scaled_copies_of_a_mean_reverting_trial() -> None:
    """Constructed, metric = column mean: trials are c·x for c = -2, -1, 1, 2, 3 with x's block means summing
    to 0 (as above, S = 8), so OOS mean = -IS mean for every trial: the largest IS mean is the smallest OOS
    mean. Rank 1 of 5: λ = ln(1/5) everywhere."""
    x = np.repeat(0.001 * np.array([1, 2, 4, 8, 16, 32, 64, -127], dtype=float), 4)
    performance = np.outer(x, [-2.0, -1.0, 1.0, 2.0, 3.0])
    result = pbo_cscv(performance, n_splits=8, metric=column_means)

    assert result.pbo == 1.0
    assert result.logits == pytest.approx(np.full(70, math.log(1 / 5)), abs=1e-12)


@pytest.mark.parametrize(("n_trials", "expected"), [(10, 0.5), (3, 2 / 3)])
def test_pbo_of_pure_noise(n_trials: int, expected: float) -> None:
    """Constructed: with independent, identically distributed trials the OOS rank of the IS winner is uniform
    on 1..N, and λ <= 0 when rank <= (N + 1)/2: PBO has expectation 1/2 for even N and (N + 1)/(2N) for odd
    N (2/3 for N = 3, since rank 2 of 3 is λ = 0, counted as overfit). One matrix's PBO is far from its
    expectation (its combinations share the data; measured standard deviation about 0.24 whatever T is),
    so this averages 1,000 matrices of 400 x N (seed 7, S = 8): standard error about 0.008, tolerance 0.04.
    Counting only λ < 0, or λ = 0 as one half, would give 1/3 or 1/2 for N = 3."""
    rng = np.random.default_rng(7)
    values = [pbo_cscv(rng.normal(0.0, 0.01, size=(400, n_trials)), n_splits=8).pbo for _ in range(1000)]
    assert np.mean(values) == pytest.approx(expected, abs=0.04)


def test_fast_sharpe_path_equals_the_generic_metric_path() -> None:
    """Constructed cross-check: the default metric (Sharpe from per-block moments) against the same Sharpe
    computed by ``sharpe_of_columns`` on the gathered rows of every combination (seed 2, 163 rows: 3
    dropped at the end)."""
    performance = np.random.default_rng(2).normal(0.0005, 0.01, size=(163, 12))
    fast = pbo_cscv(performance, n_splits=8)
    slow = pbo_cscv(performance, n_splits=8, metric=sharpe_of_columns)

    assert fast.rows_dropped == slow.rows_dropped == 3
    assert np.array_equal(fast.best_trial, slow.best_trial)
    assert fast.logits == pytest.approx(slow.logits, abs=1e-12)
    assert fast.in_sample_metric == pytest.approx(slow.in_sample_metric, rel=1e-10)
    assert fast.out_of_sample_metric == pytest.approx(slow.out_of_sample_metric, rel=1e-10)
    assert fast.pbo == slow.pbo


def _brute_force_pbo(performance: list[list[float]], n_splits: int, metric) -> tuple[float, list[float]]:
    """A second CSCV, written without numpy: explicit loops, rows per block from integer division, the IS
    winner as the first maximum, OOS ranks as 1 + #smaller + #equal-others / 2."""
    n_rows, n_trials = len(performance), len(performance[0])
    size = n_rows // n_splits
    blocks = [performance[b * size : (b + 1) * size] for b in range(n_splits)]
    logits = []
    for chosen in itertools.combinations(range(n_splits), n_splits // 2):
        in_rows = [row for b in range(n_splits) if b in chosen for row in blocks[b]]
        out_rows = [row for b in range(n_splits) if b not in chosen for row in blocks[b]]
        in_values = [metric([row[n] for row in in_rows]) for n in range(n_trials)]
        out_values = [metric([row[n] for row in out_rows]) for n in range(n_trials)]
        winner = in_values.index(max(in_values))
        mine = out_values[winner]
        smaller = sum(1 for v in out_values if v < mine)
        equal_others = sum(1 for v in out_values if v == mine) - 1
        rank = 1 + smaller + equal_others / 2
        omega = rank / (n_trials + 1)
        logits.append(math.log(omega / (1 - omega)))
    return sum(1 for lam in logits if lam <= 0) / len(logits), logits


def test_pbo_equals_the_brute_force_cscv_on_sharpe() -> None:
    """Constructed cross-check against ``_brute_force_pbo`` with the Sharpe written out in plain Python
    (mean / sample standard deviation), seed 13, 6 trials, S = 6 (20 combinations)."""

    def sharpe(values: list[float]) -> float:
        mean = sum(values) / len(values)
        return mean / math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    performance = np.random.default_rng(13).normal(0.001, 0.01, size=(60, 6))
    expected_pbo, expected_logits = _brute_force_pbo(performance.tolist(), 6, sharpe)
    result = pbo_cscv(performance, n_splits=6)

    assert result.pbo == expected_pbo
    assert result.logits == pytest.approx(expected_logits, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_splits=st.sampled_from([2, 4, 6]),
    n_trials=st.integers(min_value=2, max_value=5),
    rows_per_split=st.integers(min_value=1, max_value=3),
    extra_rows=st.integers(min_value=0, max_value=1),
)
def test_pbo_equals_the_brute_force_cscv_with_ties(
    data, n_splits, n_trials, rows_per_split, extra_rows
) -> None:
    """Property: small integer matrices (values -2..2, so column sums tie often and exactly) give the same
    logits and PBO as the brute force, with metric = column sum: the tie rules (first IS maximum, average
    OOS rank) and the dropped remainder rows agree."""
    rows_per_split = max(rows_per_split, 2 if n_splits == 2 else 1)  # each half needs 2 rows
    n_rows = n_splits * rows_per_split + extra_rows
    matrix = data.draw(hnp.arrays(np.int64, (n_rows, n_trials), elements=st.integers(-2, 2)))
    performance = matrix.astype(float)

    expected_pbo, expected_logits = _brute_force_pbo(performance.tolist(), n_splits, sum)
    result = pbo_cscv(performance, n_splits=n_splits, metric=lambda rows: rows.sum(axis=0))

    assert result.logits == pytest.approx(expected_logits, abs=1e-12)
    assert result.pbo == expected_pbo
    assert result.rows_dropped == n_rows % n_splits


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    scales=st.lists(st.floats(min_value=0.01, max_value=100.0), min_size=6, max_size=6),
)
def test_pbo_ignores_each_trials_leverage(seed: int, scales: list[float]) -> None:
    """Property (true for the Sharpe metric, which is scale-free per column): multiplying each trial's
    returns by its own positive factor leaves every IS winner, rank and logit unchanged. (A monotone
    transform of the returns themselves would not: it changes the Sharpe ordering.)"""
    performance = np.random.default_rng(seed).normal(0.0003, 0.01, size=(96, 6))
    base = pbo_cscv(performance, n_splits=8)
    scaled = pbo_cscv(performance * np.array(scales), n_splits=8)

    assert np.array_equal(base.best_trial, scaled.best_trial)
    assert scaled.logits == pytest.approx(base.logits, abs=1e-12)
    assert scaled.pbo == base.pbo


def test_pbo_depends_only_on_the_metrics_ordering() -> None:
    """Property of any metric: a strictly increasing transform of it (here exp(5·Sharpe)) gives the same
    winners, ranks and PBO, though not the same metric values."""
    performance = np.random.default_rng(17).normal(0.0005, 0.01, size=(120, 7))
    base = pbo_cscv(performance, n_splits=6, metric=sharpe_of_columns)
    transformed = pbo_cscv(performance, n_splits=6, metric=lambda rows: np.exp(5 * sharpe_of_columns(rows)))

    assert np.array_equal(base.best_trial, transformed.best_trial)
    assert np.array_equal(base.logits, transformed.logits)
    assert not np.allclose(base.in_sample_metric, transformed.in_sample_metric)


def test_pbo_handles_trials_that_never_trade_or_never_vary() -> None:
    """A flat column has Sharpe 0 (not NaN); a constant positive return has Sharpe +inf and so wins and
    keeps winning: PBO 0."""
    performance = np.random.default_rng(19).normal(0.0, 0.01, size=(160, 4))
    performance[:, 1] = 0.0
    result = pbo_cscv(performance, n_splits=8)
    assert np.isfinite(result.logits).all()
    assert sharpe_of_columns(performance)[1] == 0.0

    performance[:, 1] = 0.002
    result = pbo_cscv(performance, n_splits=8)
    assert (result.best_trial == 1).all() and result.pbo == 0.0
    assert np.isposinf(result.in_sample_metric).all()


def test_pbo_result_arrays_are_read_only() -> None:
    result = pbo_cscv(_park_miller_matrix(32, 3), n_splits=4)
    with pytest.raises(ValueError, match="read-only"):
        result.logits[0] = 1.0
    assert result.in_sample_splits.tolist() == [list(c) for c in itertools.combinations(range(4), 2)]


def test_pbo_input_errors() -> None:
    good = np.random.default_rng(23).normal(0.0, 0.01, size=(64, 3))
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(good, n_splits=5)
    with pytest.raises(ValueError, match="fewer than 2 rows per half"):
        pbo_cscv(good[:20], n_splits=32)
    with pytest.raises(ValueError, match="at least 2 trials"):
        pbo_cscv(good[:, :1], n_splits=4)
    with pytest.raises(ValueError, match="2-D"):
        pbo_cscv(good[:, 0], n_splits=4)
    broken = good.copy()
    broken[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7, column 2"):
        pbo_cscv(broken, n_splits=4)
    with pytest.raises(ValueError, match="3 values"):
        pbo_cscv(good, n_splits=4, metric=lambda rows: rows.mean())
    with pytest.raises(ValueError, match="NaN for trial 1"):
        pbo_cscv(good, n_splits=4, metric=lambda rows: np.array([0.0, np.nan, 1.0]))
