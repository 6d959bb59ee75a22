"""The Oracle: a Temporal Fusion Transformer (Lim et al. 2021) for multi-step quantile forecasts.

Built from one frozen `TFTConfig` (sizes and regularisation) plus the `ForecastShape` of the dataset
(features, encoder and horizon lengths), which is read from the dataset's metadata, never typed by
hand. Pieces, in data-flow order:

    x (B, E, F) past features, scaled
      -> variable selection (per-variable embedding + gated residual unit, softmax weights) (B, E, d)
      -> LSTM encoder over E bars; LSTM decoder over H learned horizon embeddings, seeded with
         the encoder's final state                                                    (B, E+H, d)
      -> gate + add & norm (skip: the LSTM inputs)
      -> static enrichment GRN (no static covariates here: a plain GRN)
      -> interpretable multi-head attention, causal (position i sees j <= i), shared values
      -> gate + add & norm, position-wise GRN, gate + add & norm (skip: the LSTM outputs)
      -> quantile head on the H decoder positions, monotone in the quantile axis      (B, H, Q)

What differs from the paper: there are no static covariates (one instrument per window; the static
context vectors are dropped) and no known-future inputs beyond a learned embedding per horizon step
(calendar features are in the past inputs). Each variable's GRN in variable selection works at a
narrow width c with diagonal inner weights and no LayerNorm (see `VariableSelectionNetwork`: that
form is what keeps one forecast under half a millisecond in onnxruntime). Quantiles cannot cross:
the head emits the lowest quantile and non-negative (softplus) increments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TFTConfig:
    """Sizes and regularisation of the Oracle. Input sizes come from `ForecastShape`, not from here."""

    hidden_size: int = 16  # d: width of every hidden state
    variable_size: int = 4  # c: width of each variable's embedding and GRN in variable selection
    attention_heads: int = 4  # d must divide by it; head width d // heads
    lstm_layers: int = 1
    dropout: float = 0.1
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)

    def __post_init__(self) -> None:
        if self.hidden_size < 2:
            raise ValueError(f"hidden_size must be >= 2, got {self.hidden_size}")
        if self.variable_size < 1:
            raise ValueError(f"variable_size must be >= 1, got {self.variable_size}")
        if self.attention_heads < 1 or self.hidden_size % self.attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of attention_heads {self.attention_heads}"
            )
        if self.lstm_layers < 1:
            raise ValueError(f"lstm_layers must be >= 1, got {self.lstm_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        quantiles = tuple(float(q) for q in self.quantiles)
        if not quantiles or any(not 0.0 < q < 1.0 for q in quantiles):
            raise ValueError(f"quantiles must lie in (0, 1), got {self.quantiles}")
        if list(quantiles) != sorted(set(quantiles)):
            raise ValueError(f"quantiles must be strictly increasing, got {self.quantiles}")
        object.__setattr__(self, "quantiles", quantiles)


@dataclass(frozen=True)
class ForecastShape:
    """What the model's tensors look like; built from the dataset's metadata (`WindowMeta.shape`)."""

    n_features: int
    encoder_bars: int
    horizon_bars: int

    def __post_init__(self) -> None:
        if min(self.n_features, self.encoder_bars, self.horizon_bars) < 1:
            raise ValueError(f"every size must be >= 1, got {self}")


class GateAddNorm(nn.Module):
    """LayerNorm(skip + GLU(dropout(x))), GLU(z) = a * sigmoid(b) with [a, b] = W z + c: the TFT's gated
    skip connection. With a gate near zero a block reduces to its skip path."""

    def __init__(self, input_size: int, output_size: int, dropout: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Linear(input_size, 2 * output_size)
        self.norm = nn.LayerNorm(output_size)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        a, b = self.gate(self.dropout(x)).split([self.output_size, self.output_size], dim=-1)  # (N, out) each
        return self.norm(skip + a * torch.sigmoid(b))


class GatedResidualNetwork(nn.Module):
    """GRN(x) = LayerNorm(skip(x) + GLU(dropout(W2 ELU(W1 x + b1) + b2))); skip is linear if sizes differ."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float) -> None:
        super().__init__()
        self.skip = nn.Linear(input_size, output_size) if input_size != output_size else nn.Identity()
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        self.gate_add_norm = GateAddNorm(hidden_size, output_size, dropout)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.fc2(F.elu(self.fc1(x)))  # (..., hidden)
        return self.gate_add_norm(hidden, self.skip(x))


class VariableSelectionNetwork(nn.Module):
    """Per time step: weighs the F real-valued variables (softmax of a GRN over all of them), turns each
    variable into a c-wide vector with its own gated residual unit, and combines the weighted vectors
    into one d-wide state.

    Layout: rows are (batch x time) steps, columns are channel-major (column j*F + f is channel j of
    variable f), so repeating every variable over its c channels is a concatenation of c copies of the
    row, and every elementwise operation runs over long contiguous rows; the graph has no per-variable
    loops, transposes or broadcasts over short axes (all slow in onnxruntime). Each variable is a
    scalar, which allows exact shortcuts: its embedding x w + b and the first layer of its GRN are
    affine in x, so both are elementwise operations on the repeated inputs. The per-variable unit
    keeps the GRN's gate and residual but with diagonal (per-channel) inner weights and no LayerNorm
    (inputs arrive standardised and clipped; normalising F tiny c-wide groups was the costliest node
    of the ONNX graph); channel mixing happens in the projection to d (pytorch-forecasting's
    `hidden_continuous_size` idea: a narrow per-variable width c keeps the (steps, F*c) tensors, the
    model's main cost, small)."""

    def __init__(self, n_variables: int, variable_size: int, output_size: int, dropout: float) -> None:
        super().__init__()
        self.n_variables = n_variables
        self.variable_size = variable_size
        width = n_variables * variable_size
        self.weights_grn = GatedResidualNetwork(n_variables, output_size, n_variables, dropout)
        self.input_weight = nn.Parameter(torch.randn(2, width) * 0.5)  # [embedding; first GRN layer]
        self.input_bias = nn.Parameter(torch.zeros(2, width))
        self.gate_weight = nn.Parameter(torch.randn(2, width) * 0.5)  # diagonal GLU weights [a; b]
        self.gate_bias = nn.Parameter(torch.zeros(2, width))
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(width, output_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, F) inputs of N steps -> (N, d) combined state and (N, F) variable weights."""
        weights = torch.softmax(self.weights_grn(x), dim=-1)  # (N, F)
        repeated = torch.cat([x] * self.variable_size, dim=-1)  # (N, c*F): column j*F + f is x[:, f]
        embedded = repeated * self.input_weight[0] + self.input_bias[0]  # (N, c*F)
        hidden = F.elu(repeated * self.input_weight[1] + self.input_bias[1])  # (N, c*F)
        a = hidden * self.gate_weight[0] + self.gate_bias[0]  # (N, c*F)
        b = hidden * self.gate_weight[1] + self.gate_bias[1]  # (N, c*F)
        unit = embedded + self.dropout(a) * torch.sigmoid(b)  # (N, c*F)
        weighted = unit * torch.cat([weights] * self.variable_size, dim=-1)  # (N, c*F)
        return self.project(weighted), weights  # (N, d), (N, F)


class InterpretableMultiHeadAttention(nn.Module):
    """Multi-head attention with one value projection shared by all heads and heads averaged (TFT eq. 14-16),
    so the averaged attention matrix says which steps the forecast used. Causal: a query at step i only sees
    keys j <= i (an additive mask buffer of -inf above the diagonal, built once from the sequence length)."""

    mask: Tensor
    head_mean: Tensor

    def __init__(self, size: int, heads: int, steps: int, dropout: float) -> None:
        super().__init__()
        self.size = size
        self.heads = heads
        self.head_size = size // heads
        self.steps = steps
        self.query_key = nn.Linear(size, 2 * size)
        self.value = nn.Linear(size, self.head_size)
        self.out = nn.Linear(self.head_size, size)
        self.dropout = nn.Dropout(dropout)
        future = torch.ones(steps, steps, dtype=torch.bool).triu(diagonal=1)  # (T, T)
        mask = torch.zeros(steps, steps).masked_fill(future, float("-inf"))  # (T, T)
        self.register_buffer("mask", mask, persistent=False)
        # Averaging the heads as a (1, h) @ (h, T*T) matmul: a mean over a middle axis is slow in onnxruntime.
        self.register_buffer("head_mean", torch.full((1, heads), 1.0 / heads), persistent=False)

    def forward(self, x: Tensor, queries: int | None = None) -> tuple[Tensor, Tensor]:
        """(B, T, d) -> attended states of the last `queries` positions (B, Tq, d) and their head-averaged
        attention (B, Tq, T); all T positions by default. Rows are independent, so the last rows of a
        full pass equal a pass over the last positions only (the forecast needs just the decoder's)."""
        steps, heads, head_size = self.steps, self.heads, self.head_size
        queries = steps if queries is None else queries
        query, key = self.query_key(x).split([self.size, self.size], dim=-1)  # (B, T, d) each
        query = query[:, steps - queries :]  # (B, Tq, d)
        query = query.reshape(-1, queries, heads, head_size).transpose(1, 2)  # (B, h, Tq, dh)
        key = key.reshape(-1, steps, heads, head_size).permute(0, 2, 3, 1)  # (B, h, dh, T)
        mask = self.mask[steps - queries :]  # (Tq, T)
        scores = torch.matmul(query, key) * (1.0 / math.sqrt(head_size)) + mask  # (B, h, Tq, T)
        attention = self.dropout(torch.softmax(scores, dim=-1))  # (B, h, Tq, T)
        attention = attention.reshape(-1, heads, queries * steps)  # (B, h, Tq*T)
        attention = torch.matmul(self.head_mean, attention).reshape(-1, queries, steps)  # (B, Tq, T)
        value = self.value(x)  # (B, T, dh), shared by the heads
        return self.out(torch.matmul(attention, value)), attention  # (B, Tq, d), (B, Tq, T)


class QuantileHead(nn.Module):
    """d -> Q monotone quantiles: the lowest, then non-negative softplus increments (no crossing)."""

    def __init__(self, size: int, n_quantiles: int) -> None:
        super().__init__()
        self.linear = nn.Linear(size, n_quantiles)

    @torch.no_grad()
    def initialise(self, levels: Sequence[float]) -> None:
        """Start at constant quantiles `levels` (e.g. the training labels' quantiles): zero weights,
        biases that the monotone transform maps to `levels`. Training then learns deviations from them."""
        values = torch.as_tensor(list(levels), dtype=torch.float32)
        if values.shape != (self.linear.out_features,) or bool(torch.any(values[1:] <= values[:-1])):
            raise ValueError(
                f"need {self.linear.out_features} strictly increasing levels, got {list(levels)}"
            )
        steps = values[1:] - values[:-1]
        self.linear.weight.zero_()
        self.linear.bias.copy_(torch.cat([values[:1], torch.log(torch.expm1(steps))]))  # softplus^-1

    def forward(self, x: Tensor) -> Tensor:
        raw = self.linear(x)  # (B, H, Q)
        if raw.shape[-1] == 1:
            return raw
        lowest = raw[..., :1]  # (B, H, 1)
        steps = torch.cumsum(F.softplus(raw[..., 1:]), dim=-1)  # (B, H, Q-1)
        return torch.cat([lowest, lowest + steps], dim=-1)  # (B, H, Q)


class TemporalFusionTransformer(nn.Module):
    """Quantile forecasts of the next H scaled forward returns from E bars of scaled features."""

    def __init__(self, config: TFTConfig, shape: ForecastShape) -> None:
        super().__init__()
        self.config = config
        self.shape = shape
        size = config.hidden_size
        self.variable_selection = VariableSelectionNetwork(
            shape.n_features, config.variable_size, size, config.dropout
        )
        self.horizon_embedding = nn.Parameter(torch.randn(1, shape.horizon_bars, size) * 0.1)  # (1, H, d)
        lstm_dropout = config.dropout if config.lstm_layers > 1 else 0.0
        self.encoder = nn.LSTM(size, size, config.lstm_layers, batch_first=True, dropout=lstm_dropout)
        self.decoder = nn.LSTM(size, size, config.lstm_layers, batch_first=True, dropout=lstm_dropout)
        self.post_lstm = GateAddNorm(size, size, config.dropout)
        self.enrichment = GatedResidualNetwork(size, size, size, config.dropout)
        steps = shape.encoder_bars + shape.horizon_bars
        self.attention = InterpretableMultiHeadAttention(size, config.attention_heads, steps, config.dropout)
        self.post_attention = GateAddNorm(size, size, config.dropout)
        self.position_wise = GatedResidualNetwork(size, size, size, config.dropout)
        self.pre_output = GateAddNorm(size, size, config.dropout)
        self.head = QuantileHead(size, len(config.quantiles))

    def temporal_states(
        self, selected: Tensor, decoder_input: Tensor, last: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encoder (B, E, d) + decoder (B, H, d) inputs -> the states of the last `last` positions
        (B, L, d; default all E+H) and their attention (B, L, E+H).

        Every operation here is causal in time (LSTMs, position-wise layers, masked attention): the state
        at position i depends on inputs at positions <= i only; the causality test perturbs this on all
        positions. The forecast asks for the last H only (same values, less work after the attention).
        Position-wise layers run on (rows, d) matrices, which keeps the ONNX graph to plain Gemms.
        """
        size, steps = self.config.hidden_size, self.shape.encoder_bars + self.shape.horizon_bars
        last = steps if last is None else last
        encoded, state = self.encoder(selected)  # (B, E, d)
        decoded, _ = self.decoder(decoder_input, state)  # (B, H, d)
        lstm_in = torch.cat([selected, decoder_input], dim=1)  # (B, E+H, d)
        lstm_out = torch.cat([encoded, decoded], dim=1)  # (B, E+H, d)
        temporal = self.post_lstm(lstm_out, lstm_in)  # (B, E+H, d)
        enriched = self.enrichment(temporal)  # (B, E+H, d)
        attended, attention = self.attention(enriched, queries=last)  # (B, L, d), (B, L, E+H)
        tail_enriched = enriched[:, steps - last :].reshape(-1, size)  # (B*L, d)
        tail_temporal = temporal[:, steps - last :].reshape(-1, size)  # (B*L, d)
        states = self.post_attention(attended.reshape(-1, size), tail_enriched)  # (B*L, d)
        states = self.pre_output(self.position_wise(states), tail_temporal)  # (B*L, d)
        return states.reshape(-1, last, size), attention  # (B, L, d)

    def forward_with_weights(self, x: Tensor) -> dict[str, Tensor]:
        """Quantiles plus the interpretable parts: variable weights and the decoder's attention."""
        encoder_bars, n_features = self.shape.encoder_bars, self.shape.n_features
        size = self.config.hidden_size
        steps = x.reshape(-1, n_features)  # (B*E, F)
        selected, variable_weights = self.variable_selection(steps)  # (B*E, d), (B*E, F)
        selected = selected.reshape(-1, encoder_bars, size)  # (B, E, d)
        decoder_input = self.horizon_embedding.expand(selected.shape[0], -1, -1)  # (B, H, d)
        horizon = self.shape.horizon_bars
        states, attention = self.temporal_states(selected, decoder_input, last=horizon)  # (B, H, d)
        return {
            "quantiles": self.head(states),  # (B, H, Q)
            "variable_weights": variable_weights.reshape(-1, encoder_bars, n_features),  # (B, E, F)
            "attention": attention,  # (B, H, E+H)
        }

    def forward(self, x: Tensor) -> Tensor:
        """(B, E, F) scaled features -> (B, H, Q) scaled quantiles of the forward log returns."""
        expected = (self.shape.encoder_bars, self.shape.n_features)
        if not torch.jit.is_tracing() and tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected input (batch, {expected[0]}, {expected[1]}), got {tuple(x.shape)}")
        return self.forward_with_weights(x)["quantiles"]


def quantile_loss(prediction: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Pinball loss per quantile, averaged over batch and horizon: (B, H, Q), (B, H), (Q,) -> (Q,).

    For quantile q and error e = y - yhat: max(q e, (q - 1) e). Its minimiser is the q-quantile of y.
    """
    error = target.unsqueeze(-1) - prediction  # (B, H, Q)
    loss = torch.maximum(quantiles * error, (quantiles - 1.0) * error)  # (B, H, Q)
    return loss.mean(dim=(0, 1))  # (Q,)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
