"""Guardian: contrastive VAE shapes and learning, window causality, augmentations, regimes (training fold
only, deterministic labels, risk scales, persistence), ONNX parity, and regime statistics.

Data-driven tests use real Bybit linear BTCUSDT 5m bars from data/klines (PROVENANCE.md); random
tensors appear only in shape and property tests, and hand-made label sequences in the statistics tests.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from qa_engine.contract.guardian import GuardianArtifactManifest
from qa_engine.contract.guardian import RegimeConfig
from qa_engine.contract.guardian import RegimeTracker
from qa_engine.errors import ConfigError
from qa_engine.features.build import build_feature_table
from qa_engine.features.io import interval_ns
from qa_engine.features.io import load_kline_file
from qa_engine.inference.artifact import Artifact
from qa_engine.inference.guardian import GuardianOnline
from qa_engine.inference.guardian import load_guardian_artifact
from qa_engine.inference.runner import OnnxRunner
from qa_engine.inference.scaling import fit_feature_scaler
from qa_engine.models.data import FoldConfig
from qa_engine.models.export import onnx_session
from qa_engine.models.guardian.network import ContrastiveVAE
from qa_engine.models.guardian.network import GuardianConfig
from qa_engine.models.guardian.network import GuardianInference
from qa_engine.models.guardian.network import augment
from qa_engine.models.guardian.regimes import apply_persistence
from qa_engine.models.guardian.regimes import fit_regimes
from qa_engine.models.guardian.regimes import max_drawdown_pct
from qa_engine.models.guardian.report import fold_stability
from qa_engine.models.guardian.report import plot_regimes
from qa_engine.models.guardian.report import regime_statistics
from qa_engine.models.guardian.report import run_lengths
from qa_engine.models.guardian.report import transition_matrix
from qa_engine.models.guardian.train import GuardianModel
from qa_engine.models.guardian.train import export_guardian
from qa_engine.models.guardian.train import gather_windows
from qa_engine.models.guardian.train import guardian_feature_set
from qa_engine.models.guardian.train import train_guardian
from qa_engine.models.guardian.train import window_ends
from tests.factories import research_klines
from tests.unit.models.guardian.guardian_data import TINY
from tests.unit.models.guardian.guardian_data import TINY_TRAINER

BYBIT_BTC_5M = research_klines("bybit_linear_BTCUSDT_5m")  # data/klines: real, gap-free, 2025-01-01 on
STEP_NS = interval_ns("5m")


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on the shared 2-core machine, two threads under load are far slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@cache
def real_bars() -> pl.DataFrame:
    return load_kline_file(BYBIT_BTC_5M, "5m")


def bars_between(start: str, count: int) -> pl.DataFrame:
    return real_bars().filter(pl.col("ts") >= ns(start)).head(count)


@cache
def real_table(start: str = "2025-02-01", count: int = 3000) -> pl.DataFrame:
    """Guardian features of `count` real bars from `start` (warm-up rows dropped)."""
    return build_feature_table(bars_between(start, count), guardian_feature_set(), STEP_NS).table


def fold_over(table: pl.DataFrame, name: str = "t") -> FoldConfig:
    """Train on the first 60% of rows, validation the next 20%, test the rest."""
    ts = table.get_column("ts").to_numpy()
    count = len(ts)
    return FoldConfig(
        name=name,
        train_start=iso(int(ts[0])),
        validation_start=iso(int(ts[int(count * 0.6)])),
        test_start=iso(int(ts[int(count * 0.8)])),
        test_end=iso(int(ts[-1]) + STEP_NS),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    table = real_table()
    fold = fold_over(table)
    run_dir = tmp_path_factory.mktemp("guardian")
    return (
        train_guardian(table, fold, run_dir, TINY, TINY_TRAINER, "5m", guardian_feature_set()),
        table,
        fold,
        run_dir,
    )


def scaled_windows(table: pl.DataFrame, count: int, window_bars: int) -> np.ndarray:
    names = guardian_feature_set().names
    raw = table.select(names).to_numpy()
    scaled = fit_feature_scaler(raw, names, clip=5.0).transform(raw).astype(np.float32)
    ts = table.get_column("ts").to_numpy()
    ends = window_ends(ts, window_bars, STEP_NS, int(ts[0]), int(ts[-1]) + 1)
    return gather_windows(scaled, ends[:: max(1, len(ends) // count)][:count], window_bars)


# ---- config and shapes ------------------------------------------------------------------------


def test_config_rejects_one_bar_escalation_and_unset_features() -> None:
    with pytest.raises(ValueError, match="escalate_bars"):
        RegimeConfig(escalate_bars=1)
    with pytest.raises(ValueError, match="kernel_size"):
        GuardianConfig(kernel_size=2)
    with pytest.raises(ConfigError, match="n_features"):
        ContrastiveVAE(GuardianConfig())


def test_config_round_trips_through_a_dict() -> None:
    from dataclasses import asdict

    config = replace(TINY, n_features=20)
    assert GuardianConfig.from_dict(asdict(config)) == config


def test_forward_and_inference_shapes() -> None:
    config = replace(TINY, n_features=5)
    model = ContrastiveVAE(config)
    x = torch.randn(3, config.window_bars, 5)
    reconstruction, mean, log_variance = model(x)
    assert reconstruction.shape == (3, 16, 5)
    assert mean.shape == log_variance.shape == (3, 4)
    parts = model.loss(x)
    assert all(part.ndim == 0 and torch.isfinite(part) for part in parts)
    assert float(parts.contrastive.detach()) > 0
    regimes = fit_regimes(
        np.random.default_rng(0).standard_normal((40, 4)),
        np.random.default_rng(1).uniform(0.001, 0.002, 40),
        np.zeros(40),
        config.regimes,
    )
    probabilities, latent = GuardianInference(model.encoder, regimes).eval()(x)
    assert probabilities.shape == (3, 4) and latent.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(dim=1).detach().numpy(), 1.0, atol=1e-6)


def test_tiny_model_overfits_a_tiny_real_batch() -> None:
    """Contrastive weight 0 (the pure VAE) and a small beta: the loss falls by more than 90%."""
    torch.manual_seed(0)
    x = torch.from_numpy(scaled_windows(real_table(), 8, 16))
    config = replace(
        TINY, n_features=x.shape[2], contrastive_weight=0.0, beta=1e-4, hidden_size=32, latent_dim=8
    )
    model = ContrastiveVAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(x).total.detach())
    for _ in range(400):
        loss = model.loss(x).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        last = float(model.loss(x).total)
    assert last < 0.1 * first, (first, last)


# ---- windows and causality ---------------------------------------------------------------------


def test_window_ends_never_cross_a_gap() -> None:
    ts = np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10], dtype=np.int64) * STEP_NS  # gap between 4 and 6
    ends = window_ends(ts, 3, STEP_NS, 0, 11 * STEP_NS)
    assert ends.tolist() == [2, 3, 4, 7, 8, 9]
    windows = gather_windows(np.arange(10.0)[:, None], ends, 3)[:, :, 0]
    assert windows[3].tolist() == [5.0, 6.0, 7.0]  # rows of ts 6, 7, 8 only


def test_window_ending_at_t_is_unchanged_when_later_bars_change() -> None:
    """Features from bars cut at t and from bars whose later prices are rewritten give the same window
    (and latent) at t: the window builder reads rows <= t only."""
    bars = bars_between("2025-06-01", 800)
    cut = 600
    later = pl.Series([1.0] * cut + [1.3] * (bars.height - cut))
    perturbed = bars.with_columns(
        *(pl.col(c) * later for c in ("open", "high", "low", "close")), pl.col("volume") * later * 2
    )
    features = guardian_feature_set()
    names = features.names
    tables = [build_feature_table(b, features, STEP_NS).table for b in (bars.head(cut), perturbed)]
    t = int(bars.get_column("ts")[cut - 1])
    windows = []
    for table in tables:
        ts = table.get_column("ts").to_numpy()
        ends = window_ends(ts, 32, STEP_NS, t, t + 1)
        assert len(ends) == 1
        windows.append(gather_windows(table.select(names).to_numpy(), ends, 32))
    np.testing.assert_array_equal(windows[0], windows[1])
    assert not np.allclose(tables[0].select(names).to_numpy()[-1], tables[1].select(names).to_numpy()[-1])
    model = ContrastiveVAE(replace(GuardianConfig(), n_features=len(names))).eval()
    with torch.no_grad():
        latents = [model.encoder(torch.from_numpy(w.astype(np.float32)))[0] for w in windows]
    assert torch.equal(latents[0], latents[1])


def test_augmentations_read_only_their_own_window() -> None:
    config = replace(TINY, n_features=20)
    x = torch.from_numpy(scaled_windows(real_table(), 4, 16))
    poisoned = x.clone()
    poisoned[1:] = float("nan")  # every other window of the batch
    first = augment(x, config, torch.Generator().manual_seed(3))
    second = augment(poisoned, config, torch.Generator().manual_seed(3))
    assert torch.isfinite(second[0]).all()
    assert torch.equal(first[0], second[0])


def test_crop_and_resize_stays_inside_the_window() -> None:
    config = replace(TINY, n_features=20, jitter_std=0.0, scale_std=0.0, mask_bars=0, crop_min_fraction=0.5)
    x = torch.from_numpy(scaled_windows(real_table(), 64, 16))
    view = augment(x, config, torch.Generator().manual_seed(0))
    low, high = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    assert bool(((view >= low - 1e-6) & (view <= high + 1e-6)).all())
    assert not torch.equal(view, x)


# ---- regimes ---------------------------------------------------------------------------------


def blobs(volatility_by_blob: list[float], per_blob: int = 50, seed: int = 0):
    """Four well-separated latent blobs, one volatility per blob, in blocks of rows (time order)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float64)
    latent = np.concatenate([centre + 0.3 * rng.standard_normal((per_blob, 2)) for centre in centres])
    volatility = np.repeat(volatility_by_blob, per_blob).astype(np.float64)
    return centres, latent, volatility


def test_regimes_are_ordered_by_volatility_and_deterministic() -> None:
    centres, latent, volatility = blobs([0.003, 0.001, 0.004, 0.002])
    config = RegimeConfig()
    first = fit_regimes(latent, volatility, np.zeros(len(latent)), config)
    again = fit_regimes(latent, volatility, np.zeros(len(latent)), config)
    np.testing.assert_array_equal(first.centroids, again.centroids)
    nearest_blob = [int(np.argmin(((centres - c) ** 2).sum(1))) for c in first.centroids]
    assert nearest_blob == [1, 3, 0, 2]  # volatility 0.001, 0.002, 0.003, 0.004
    np.testing.assert_allclose(first.training_volatility, [0.001, 0.002, 0.003, 0.004])
    assert first.assign(centres[[1, 3, 0, 2]]).tolist() == [0, 1, 2, 3]


def test_risk_scale_is_inverse_volatility_and_zero_for_a_dangerous_top_regime() -> None:
    _, latent, volatility = blobs([0.001, 0.002, 0.003, 0.008])
    regimes = fit_regimes(latent, volatility, np.zeros(len(latent)), RegimeConfig())
    # median window volatility 0.0025; 0.008 >= 2 x 0.0025 -> dangerous
    assert regimes.dangerous
    np.testing.assert_allclose(regimes.risk_scale, [1.0, 0.5, 1 / 3, 0.0])


def test_calm_top_regime_keeps_its_inverse_volatility_scale() -> None:
    _, latent, volatility = blobs([0.0010, 0.0011, 0.0012, 0.0013])
    regimes = fit_regimes(latent, volatility, np.full(len(latent), 1e-5), RegimeConfig())
    assert not regimes.dangerous
    np.testing.assert_allclose(regimes.risk_scale, [1.0, 1 / 1.1, 1 / 1.2, 1 / 1.3])


def test_drawdown_inside_a_run_of_the_top_regime_makes_it_dangerous() -> None:
    _, latent, volatility = blobs([0.0010, 0.0011, 0.0012, 0.0013])
    returns = np.zeros(len(latent))
    returns[150:160] = -0.01  # the last blob (most volatile) loses ~9.5% inside one run
    regimes = fit_regimes(latent, volatility, returns, RegimeConfig())
    assert regimes.dangerous and regimes.risk_scale[-1] == 0.0
    # escalate_bars=2: the run reported as regime 3 starts one bar late, so it holds 9 of the 10 losses
    assert regimes.training_drawdown_pct[-1] == pytest.approx(100 * (1 - np.exp(-0.09)))
    assert max_drawdown_pct(np.array([0.1, -0.2, 0.05])) == pytest.approx(100 * (1 - np.exp(-0.2)))


def one_hot(labels: list[int], k: int = 4, confidence: float = 0.9) -> np.ndarray:
    rest = (1 - confidence) / (k - 1)
    probabilities = np.full((len(labels), k), rest)
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def test_one_noisy_bar_does_not_flip_the_regime() -> None:
    config = RegimeConfig(escalate_bars=2, deescalate_bars=4)
    assert apply_persistence(one_hot([0, 0, 3, 0, 0]), config).tolist() == [0, 0, 0, 0, 0]
    # riskier: switches on the 2nd consecutive bar
    assert apply_persistence(one_hot([0, 3, 3, 3]), config).tolist() == [0, 0, 3, 3]
    # calmer: needs 4 consecutive bars
    assert apply_persistence(one_hot([2, 2, 0, 0, 0, 0, 0]), config).tolist() == [2, 2, 2, 2, 2, 0, 0]
    # alternating candidates restart the count
    assert apply_persistence(one_hot([0, 3, 2, 3, 2]), config).tolist() == [0, 0, 0, 0, 0]


def test_low_confidence_bars_do_not_count_and_a_gap_resets() -> None:
    config = RegimeConfig(escalate_bars=2, deescalate_bars=4, min_switch_probability=0.5)
    weak = one_hot([0, 3, 3, 3], confidence=0.4)
    assert apply_persistence(weak, config).tolist() == [0, 0, 0, 0]
    assert apply_persistence(one_hot([0, 0, 3, 3]), config, np.array([2])).tolist() == [0, 0, 3, 3]
    tracker = RegimeTracker(config)
    assert [tracker.update(p) for p in one_hot([1, 2, 2])] == [1, 1, 2]


# ---- training, k-means on the training fold only, export ---------------------------------------


def test_training_writes_curves_and_a_checkpoint_that_round_trips(trained) -> None:
    training, table, fold, run_dir = trained
    model = training.model
    assert (run_dir / "curves.csv").is_file() and (run_dir / "guardian.pt").is_file()
    assert model.config.n_features == 20 and model.windows["train"] > 0
    loaded = GuardianModel.load(run_dir / "guardian.pt")
    start, end = fold.bounds_ns("test")
    expected = model.assign(table, start, end)
    assert loaded.assign(table, start, end).equals(expected)
    assert set(expected.get_column("regime").unique().to_list()) <= set(range(4))


def test_scaler_and_centroids_come_from_the_training_fold_only(trained, tmp_path: Path) -> None:
    """Same training rows, a different real validation/test period: same scaler, network and centroids."""
    training, table, fold, _ = trained
    train_end = fold.bounds_ns("validation")[0]
    other = real_table("2025-09-01", 3000)
    elsewhere = other.filter(pl.col("ts") >= int(other.get_column("ts")[len(other) // 2]))
    swapped = pl.concat([table.filter(pl.col("ts") < train_end), elsewhere])
    later = elsewhere.get_column("ts").to_numpy()
    moved = FoldConfig(
        name="t",
        train_start=fold.train_start,
        validation_start=fold.validation_start,
        test_start=iso(int(later[len(later) // 2])),
        test_end=iso(int(later[-1]) + STEP_NS),
    )
    retrained = train_guardian(
        swapped, moved, tmp_path, TINY, TINY_TRAINER, "5m", guardian_feature_set()
    ).model
    model = training.model
    np.testing.assert_array_equal(retrained.scaler.mean, model.scaler.mean)
    np.testing.assert_array_equal(retrained.regimes.centroids, model.regimes.centroids)
    np.testing.assert_array_equal(retrained.regimes.risk_scale, model.regimes.risk_scale)
    assert retrained.validation_metrics["validation_total"] != model.validation_metrics["validation_total"]


def test_onnx_matches_torch_and_the_shared_runner_gives_the_regime(trained, tmp_path: Path) -> None:
    training, table, fold, _ = trained
    model = training.model
    test = training.splits["test"]
    windows = test.batch(np.arange(len(test)))["x"]  # (M, T, F) scaled
    manifest = export_guardian(model, tmp_path, windows[:64])
    assert manifest["validation_metrics"]["onnx_parity_max_abs_diff"] <= 1e-5
    session = onnx_session(tmp_path / "model.onnx")
    probabilities, latent = session.run(None, {"window": windows[:1]})  # one window, as in trading
    with torch.no_grad():
        expected_p, expected_latent = model.inference_module()(torch.from_numpy(windows[:1]))
    np.testing.assert_allclose(probabilities, expected_p.numpy(), atol=1e-5)
    np.testing.assert_allclose(latent, expected_latent.numpy(), atol=1e-5)
    # raw features -> the shared runner (scaler from the manifest) -> probabilities
    parsed = GuardianArtifactManifest.model_validate(manifest)
    runner = OnnxRunner(Artifact(tmp_path, parsed))
    names = guardian_feature_set().names
    raw = gather_windows(table.select(names).to_numpy(), test.ends, model.config.window_bars)
    by_runner = runner.predict_batch(raw)
    assigned = model.assign(table, *fold.bounds_ns("test"))
    assert by_runner.argmax(axis=1).tolist() == assigned.get_column("regime_raw").to_list()
    assert parsed.guardian.regime_model().risk_scale.tolist() == model.regimes.risk_scale.tolist()


def test_online_guardian_replays_the_batch_assignment_bar_by_bar(trained, tmp_path: Path) -> None:
    """Artifact folder -> GuardianOnline, one raw window per bar: same regimes (persistence included)
    and risk scales as the torch batch assignment of the same bars."""
    training, table, fold, _ = trained
    model = training.model
    export_guardian(model, tmp_path)
    online = GuardianOnline(load_guardian_artifact(tmp_path, window_bars=16, interval="5m"))
    test = training.splits["test"]
    raw = gather_windows(table.select(guardian_feature_set().names).to_numpy(), test.ends, 16)
    readings = [online.update(window) for window in raw]
    assigned = model.assign(table, *fold.bounds_ns("test"))
    assert [r.regime for r in readings] == assigned.get_column("regime").to_list()
    assert [r.raw_regime for r in readings] == assigned.get_column("regime_raw").to_list()
    np.testing.assert_allclose([r.risk_scale for r in readings], assigned.get_column("risk_scale").to_numpy())
    with pytest.raises(ConfigError, match="windows of 16 bars"):
        load_guardian_artifact(tmp_path, window_bars=32)


def test_the_shared_loader_reads_a_guardian_artifact_and_the_guardian_loader_refuses_other_kinds(
    trained, tmp_path: Path
) -> None:
    training, _, _, _ = trained
    export_guardian(training.model, tmp_path / "guardian")
    from qa_engine.contract.manifest import read_manifest
    from qa_engine.inference.artifact import load_artifact

    artifact = load_artifact(tmp_path / "guardian", window_bars=16, interval="5m")
    assert isinstance(artifact.manifest, GuardianArtifactManifest)
    assert artifact.manifest.model_kind == "guardian"
    assert isinstance(read_manifest(tmp_path / "guardian"), GuardianArtifactManifest)
    oracle = Path(__file__).resolve().parents[4] / "artifacts" / "oracle"
    if (oracle / "manifest.json").is_file():
        with pytest.raises(ConfigError, match="'oracle' model, not a Guardian"):
            load_guardian_artifact(oracle)


def test_export_lists_every_fold_of_the_run(trained, tmp_path: Path) -> None:
    training, _, fold, _ = trained
    model = training.model
    earlier = replace(model, fold=fold.model_copy(update={"name": "earlier"}), windows={"train": 1})
    manifest = export_guardian(model, tmp_path, run_folds=[earlier, model])
    assert [entry["name"] for entry in manifest["folds"]] == ["earlier", "t"]
    assert manifest["folds"][0]["windows"] == {"train": 1} and manifest["trained_on_fold"] == "t"
    with pytest.raises(ValueError, match="do not include"):
        export_guardian(model, tmp_path / "x", run_folds=[earlier])


# ---- statistics ------------------------------------------------------------------------------


def test_statistics_of_a_hand_made_sequence() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0, 2, 2, 2, 2])
    returns = np.array([0.01, -0.01, 0.02, 0.0, -0.02, 0.03, 0.0, 0.0, 0.01, -0.01])
    starts = np.array([7])  # a gap before row 7: the 2-run splits into 1 + 3 bars
    assert run_lengths(labels, starts) == [(0, 2), (1, 3), (0, 1), (2, 1), (2, 3)]
    counts, probabilities = transition_matrix(labels, 3, starts)
    # pairs inside segments: 0-0, 0-1, 1-1, 1-1, 1-0, 0-2 | 2-2, 2-2 (6->7 crosses the gap)
    assert counts.tolist() == [[1, 1, 1], [1, 2, 0], [0, 0, 2]]
    np.testing.assert_allclose(probabilities[0], [1 / 3, 1 / 3, 1 / 3])
    stats = regime_statistics(labels, returns, 3, starts, bars_per_year=4.0)
    zero, one, two = stats["regimes"]
    assert (zero["bars"], one["bars"], two["bars"]) == (3, 3, 4)
    assert zero["share"] == pytest.approx(0.3)
    assert one["volatility_per_bar"] == pytest.approx(np.std([0.02, 0.0, -0.02]))
    assert one["volatility_annualised"] == pytest.approx(2 * np.std([0.02, 0.0, -0.02]))
    assert zero["mean_return_per_bar_bps"] == pytest.approx(1e4 * (0.01 - 0.01 + 0.03) / 3)
    # forward returns of regime 0: rows 0, 1, 5 -> returns of rows 1, 2, 6
    assert zero["mean_forward_return_per_bar_bps"] == pytest.approx(1e4 * (-0.01 + 0.02 + 0.0) / 3)
    # regime 2: rows 6..9; row 6's next bar is after the gap, row 9 is last -> rows 7, 8 -> 0.01, -0.01
    assert two["mean_forward_return_per_bar_bps"] == pytest.approx(0.0)
    assert (zero["runs"], zero["mean_duration_bars"], zero["median_duration_bars"]) == (2, 1.5, 1.5)
    assert (two["runs"], two["max_duration_bars"]) == (2, 3)
    assert stats["switches"] == 3 and stats["runs"] == 5


def test_fold_stability_matches_permuted_labels() -> None:
    a = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    b = np.array([1, 1, 0, 0, 2, 2, 3, 3])
    result = fold_stability(a, b, 4)
    assert result["adjusted_rand_index"] == pytest.approx(1.0)
    assert result["agreement"] == pytest.approx(0.5)
    assert result["matched_agreement"] == pytest.approx(1.0)
    assert result["matching"] == {0: 1, 1: 0, 2: 2, 3: 3}


def test_plot_regimes_writes_a_png(tmp_path: Path) -> None:
    bars = bars_between("2025-03-01", 300)
    labels = np.repeat([0, 1, 2], 100)
    path = plot_regimes(
        bars.get_column("ts").to_numpy(),
        bars.get_column("close").to_numpy(),
        labels,
        tmp_path / "regimes.png",
        "test",
        3,
        np.array([150]),
        np.array([1.0, 0.5, 0.0]),
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
