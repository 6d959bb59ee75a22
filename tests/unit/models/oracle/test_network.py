"""The Oracle's TFT: shapes, causal attention, monotone quantiles, pinball loss, and that it can learn."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qa_engine.models.oracle.network import ForecastShape  # noqa: E402
from qa_engine.models.oracle.network import InterpretableMultiHeadAttention  # noqa: E402
from qa_engine.models.oracle.network import TemporalFusionTransformer  # noqa: E402
from qa_engine.models.oracle.network import TFTConfig  # noqa: E402
from qa_engine.models.oracle.network import quantile_loss  # noqa: E402
from tests.unit.models.oracle_data import real_windows  # noqa: E402
from tests.unit.models.oracle_data import tiny_fold  # noqa: E402
from tests.unit.models.oracle_data import tiny_model  # noqa: E402


def test_forward_shapes_come_from_the_dataset_metadata() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    x = torch.from_numpy(real_windows(data, count=5))  # (5, E, F)

    outputs = model.eval().forward_with_weights(x)

    meta = data.meta
    assert model.shape == ForecastShape(meta.n_features, meta.encoder_bars, meta.horizon_bars)
    assert outputs["quantiles"].shape == (5, meta.horizon_bars, 3)
    assert outputs["variable_weights"].shape == (5, meta.encoder_bars, meta.n_features)
    assert outputs["attention"].shape == (5, meta.horizon_bars, meta.encoder_bars + meta.horizon_bars)
    torch.testing.assert_close(outputs["variable_weights"].sum(-1), torch.ones(5, meta.encoder_bars))
    torch.testing.assert_close(outputs["attention"].sum(-1), torch.ones(5, meta.horizon_bars))


def test_forward_rejects_a_window_of_the_wrong_length() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    x = torch.from_numpy(real_windows(data, count=2))[:, 1:]  # one bar short

    with pytest.raises(ValueError, match=r"expected input \(batch, 16, 5\), got \(2, 15, 5\)"):
        model(x)


def test_quantiles_never_cross() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95))
    x = torch.from_numpy(real_windows(data, count=64)) * 5.0  # far outside the training range too

    with torch.no_grad():
        quantiles = model.eval()(x)

    assert quantiles.shape[-1] == 5
    assert bool(torch.all(quantiles[..., 1:] > quantiles[..., :-1]))


def test_attention_mask_hides_the_future() -> None:
    torch.manual_seed(1)
    attention = InterpretableMultiHeadAttention(size=8, heads=2, steps=10, dropout=0.0).eval()
    x = torch.randn(3, 10, 8)  # (B, T, d): module-level check of the mask with arbitrary states

    _, weights = attention(x)

    future = torch.ones(10, 10, dtype=torch.bool).triu(diagonal=1)
    assert bool(torch.all(weights[:, future] == 0))
    assert bool(torch.all(weights[:, ~future] > 0))


@pytest.mark.parametrize("step", [0, 7, 15, 16, 18])
def test_perturbing_step_t_plus_1_leaves_states_up_to_t_unchanged(step: int) -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    model.eval()
    x = torch.from_numpy(real_windows(data, count=2))
    encoder_bars = data.meta.encoder_bars
    with torch.no_grad():
        selected, _ = model.variable_selection(x.reshape(-1, data.meta.n_features))
        selected = selected.reshape(2, encoder_bars, -1)  # (B, E, d)
        decoder = model.horizon_embedding.expand(2, -1, -1).clone()  # (B, H, d)
        before, _ = model.temporal_states(selected, decoder)
        sequence = torch.cat([selected, decoder], dim=1).clone()  # (B, E+H, d)
        sequence[:, step + 1] += 3.0  # perturb step t+1 only (encoder or decoder side)
        after, _ = model.temporal_states(sequence[:, :encoder_bars], sequence[:, encoder_bars:])

    assert torch.equal(after[:, : step + 1], before[:, : step + 1])  # outputs at <= t: bit-identical
    assert not torch.allclose(after[:, step + 1], before[:, step + 1])  # the perturbation is visible


def test_the_forecast_path_equals_the_decoder_rows_of_the_full_causal_pass() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    model.eval()
    x = torch.from_numpy(real_windows(data, count=3))
    horizon = data.meta.horizon_bars
    with torch.no_grad():
        selected, _ = model.variable_selection(x.reshape(-1, data.meta.n_features))
        selected = selected.reshape(3, data.meta.encoder_bars, -1)  # (B, E, d)
        decoder = model.horizon_embedding.expand(3, -1, -1)  # (B, H, d)
        full, full_attention = model.temporal_states(selected, decoder)  # every position
        outputs = model.forward_with_weights(x)

    torch.testing.assert_close(outputs["quantiles"], model.head(full[:, -horizon:]), rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs["attention"], full_attention[:, -horizon:], rtol=0, atol=1e-7)


def test_a_change_in_the_last_encoder_bar_reaches_every_forecast_step() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    x = torch.from_numpy(real_windows(data, count=2))
    changed = x.clone()
    changed[:, -1] += 1.0

    with torch.no_grad():
        difference = (model.eval()(changed) - model(x)).abs().amax(dim=(0, 2))  # (H,)

    assert bool(torch.all(difference > 0))


def test_quantile_loss_matches_a_hand_computation() -> None:
    prediction = torch.tensor([[[-1.0, 0.0, 1.0]]])  # (1, 1, 3)
    target = torch.tensor([[0.5]])  # (1, 1)
    levels = torch.tensor([0.1, 0.5, 0.9])

    loss = quantile_loss(prediction, target, levels)

    # errors 1.5, 0.5, -0.5 -> 0.1*1.5, 0.5*0.5, (0.9-1)*(-0.5)
    torch.testing.assert_close(loss, torch.tensor([0.15, 0.25, 0.05]))


def test_head_initialisation_starts_at_the_given_levels() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data)
    model.head.initialise([-1.3, 0.0, 1.2])

    with torch.no_grad():
        quantiles = model.eval()(torch.from_numpy(real_windows(data, count=3)))

    torch.testing.assert_close(quantiles, torch.tensor([-1.3, 0.0, 1.2]).expand(3, data.meta.horizon_bars, 3))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hidden_size": 10, "attention_heads": 4}, "multiple of attention_heads"),
        ({"quantiles": (0.5, 0.1)}, "strictly increasing"),
        ({"quantiles": (0.0, 0.5)}, r"lie in \(0, 1\)"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_config_rejects_inconsistent_sizes(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TFTConfig(**settings)


def test_a_tiny_model_overfits_a_tiny_real_batch() -> None:
    data = tiny_fold()
    model, _ = tiny_model(data, hidden_size=16, variable_size=4, dropout=0.0)
    batch = data.splits["train"].batch(np.arange(8))
    x, y = torch.from_numpy(batch["x"]), torch.from_numpy(batch["y"])
    levels = torch.tensor(model.config.quantiles)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)

    def loss() -> torch.Tensor:
        return quantile_loss(model(x), y, levels).mean()

    with torch.no_grad():
        first = float(loss())
    for _ in range(150):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()

    assert float(value.detach()) < 0.1 * first  # the loss falls by more than 90%


def test_model_builds_for_the_default_sizes() -> None:
    model = TemporalFusionTransformer(
        TFTConfig(), ForecastShape(n_features=52, encoder_bars=60, horizon_bars=12)
    )

    with torch.no_grad():
        out = model.eval()(torch.zeros(2, 60, 52))

    assert out.shape == (2, 12, 3)
    assert sum(p.numel() for p in model.parameters()) < 30_000  # small enough for the CPU budgets
