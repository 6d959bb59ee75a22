"""The Strategist: a Decision Transformer (Chen et al. 2021), a GPT over (return-to-go, state, action) tokens.

Timing (the contract with the backtest, which fills a market order at the close of the bar whose
`on_bar` decided it; bars are stamped at their close):

    step t  <->  bar t (its close is the decision time)
    s_t     the feature row of bar t: features computed on bars <= t only (the feature library is causal)
    a_t     the target position chosen at bar t's close, filled at that close, held over bar t+1
    r_t     a_t's position * ln(close[t+1] / close[t]) - taker_fee_rate * |position_t - position_{t-1}|
    R_t     return-to-go: sum of r_k for k = t .. end of t's episode (a fixed-length run of bars)

The sequence fed to the model is R_0, s_0, a_0, R_1, s_1, a_1, ..., R_{K-1}, s_{K-1}, a_{K-1} (3K tokens)
under a causal mask, and a_t is predicted from the output at the s_t token. So the prediction of a_t sees
R_<=t, s_<=t and a_<t; the token a_t itself comes after s_t and cannot feed its own prediction. No
observation token (s, a) at or before step t carries anything from bar t+1 or later.

The one token that looks forward is R_t, by the design of a Decision Transformer: in training it is
the realised return of the rest of the episode (hindsight conditioning); at inference it is replaced
by a *chosen* target return minus the rewards realised so far (R_t = target - r_0 - ... - r_{t-1},
which needs bars <= t only). See `qa_engine.contract.policy_context.StrategistContext`. A known limit of
return conditioning in a stochastic market: realised returns mix skill and luck, so asking for a high
return does not make the policy earn it (Paster et al. 2022, "You can't count on luck").

Pieces (nanoGPT style, one frozen config):

    R (B, K, 1), s (B, K, S), a (B, K) int, timestep (B, K) int
      -> per-kind linear/embedding + timestep embedding                       (B, K, C) each
      -> interleave R, s, a + token-position embedding, LayerNorm             (B, 3K, C)
      -> n_layer pre-norm blocks: causal self-attention, GELU MLP              (B, 3K, C)
      -> LayerNorm, the s_t tokens, linear head                               (B, K, A) action logits
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

INPUT_NAMES = ("returns_to_go", "states", "actions", "timesteps")
OUTPUT_NAME = "action_logits"


@dataclass(frozen=True)
class DecisionTransformerConfig:
    """Sizes of the Strategist. `state_dim` and `max_timestep` come from the trajectories
    (`TrajectorySet.state_dim`, `.episode_bars`): `train_strategist` fills them in, never by hand."""

    state_dim: int = 0  # S: features per state; 0 = not derived yet (the model refuses to build)
    n_actions: int = 3  # A: target positions evenly spaced in [-1, 1]; 3 = short / flat / long
    context_length: int = 20  # K: steps in the context, 3K tokens
    max_timestep: int = 288  # size of the timestep embedding: the episode length in bars (288 = 1 day of 5m)
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32  # C
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.n_actions < 2:
            raise ValueError(f"n_actions must be >= 2, got {self.n_actions}")
        for name in ("context_length", "max_timestep", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.state_dim < 0:
            raise ValueError(f"state_dim must be >= 0 (0 = derive from the data), got {self.state_dim}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be a multiple of n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def tokens(self) -> int:
        return 3 * self.context_length


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention; token i sees tokens j <= i (an additive -inf mask above the diagonal).

    Dropout acts on the output projection only: dropout on the (B, h, T, T) attention weights was a
    quarter of the CPU time of a training step (its Bernoulli draws) for no measured gain at this size."""

    mask: Tensor

    def __init__(self, config: DecisionTransformerConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.head_size = config.n_embd // config.n_head
        self.tokens = config.tokens
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.residual_dropout = nn.Dropout(config.dropout)
        future = torch.ones(self.tokens, self.tokens, dtype=torch.bool).triu(diagonal=1)  # (T, T)
        mask = torch.zeros(self.tokens, self.tokens).masked_fill(future, float("-inf"))  # (T, T)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        tokens, heads, head_size = self.tokens, self.n_head, self.head_size
        q, k, v = self.qkv(x).split(self.n_embd, dim=-1)  # (B, T, C) each
        q = q.reshape(-1, tokens, heads, head_size).transpose(1, 2)  # (B, h, T, hs)
        k = k.reshape(-1, tokens, heads, head_size).permute(0, 2, 3, 1)  # (B, h, hs, T)
        v = v.reshape(-1, tokens, heads, head_size).transpose(1, 2)  # (B, h, T, hs)
        scores = torch.matmul(q, k) * (1.0 / math.sqrt(head_size)) + self.mask  # (B, h, T, T)
        attention = torch.softmax(scores, dim=-1)  # (B, h, T, T); no dropout here, see the class docstring
        y = torch.matmul(attention, v).transpose(1, 2).reshape(-1, tokens, self.n_embd)  # (B, T, C)
        return self.residual_dropout(self.proj(y))

    def forward_last(self, x: Tensor) -> Tensor:
        """The output of the last of the P tokens in x only, which sees all of them: (B, P, C) -> (B, C).
        The same numbers as forward(x)[:, P-1] with a fraction of the work (inference)."""
        visible, heads, head_size = x.shape[1], self.n_head, self.head_size
        q, k, v = self.qkv(x).split(self.n_embd, dim=-1)  # (B, P, C) each
        q = q[:, -1].reshape(-1, heads, 1, head_size)  # (B, h, 1, hs)
        k = k.reshape(-1, visible, heads, head_size).permute(0, 2, 3, 1)  # (B, h, hs, P)
        v = v.reshape(-1, visible, heads, head_size).transpose(1, 2)  # (B, h, P, hs)
        attention = torch.softmax(torch.matmul(q, k) * (1.0 / math.sqrt(head_size)), dim=-1)  # (B, h, 1, P)
        y = torch.matmul(attention, v).reshape(-1, self.n_embd)  # (B, C)
        return self.residual_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, config: DecisionTransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: DecisionTransformerConfig) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(config.n_embd)
        self.attention = CausalSelfAttention(config)
        self.norm_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm_1(x))  # (B, T, C)
        return x + self.mlp(self.norm_2(x))  # (B, T, C)

    def forward_last(self, x: Tensor) -> Tensor:
        """forward(x)[:, -1] for the last token of x, computed for that token only: (B, P, C) -> (B, C)."""
        y = x[:, -1] + self.attention.forward_last(self.norm_1(x))  # (B, C)
        return y + self.mlp(self.norm_2(y))  # (B, C)


class DecisionTransformer(nn.Module):
    """Action logits at every step of the context: (B, K, A); logits[:, t] come from the s_t token."""

    def __init__(self, config: DecisionTransformerConfig) -> None:
        super().__init__()
        if config.state_dim < 1:
            raise ValueError(
                "config.state_dim is 0: derive it from the trajectories (TrajectorySet.state_dim)"
            )
        self.config = config
        size = config.n_embd
        self.embed_return = nn.Linear(1, size)
        self.embed_state = nn.Linear(config.state_dim, size)
        self.embed_action = nn.Embedding(config.n_actions, size)
        self.embed_timestep = nn.Embedding(config.max_timestep, size)
        self.embed_position = nn.Parameter(torch.zeros(1, config.tokens, size))  # (1, 3K, C)
        self.embed_norm = nn.LayerNorm(size)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.final_norm = nn.LayerNorm(size)
        self.head = nn.Linear(size, config.n_actions)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():  # GPT-2: scaled init of the residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def embed(self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        """(B, K, 1), (B, K, S), (B, K) int64, (B, K) int64 -> (B, 3K, C) tokens R_0, s_0, a_0, R_1, ..."""
        steps, size = self.config.context_length, self.config.n_embd
        time = self.embed_timestep(timesteps)  # (B, K, C)
        returns = self.embed_return(returns_to_go) + time  # (B, K, C)
        observed = self.embed_state(states) + time  # (B, K, C)
        acted = self.embed_action(actions) + time  # (B, K, C)
        tokens = torch.stack([returns, observed, acted], dim=2).reshape(-1, 3 * steps, size)  # (B, 3K, C)
        return self.dropout(self.embed_norm(tokens + self.embed_position))  # (B, 3K, C)

    def hidden_states(
        self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor
    ) -> Tensor:
        """Outputs at the s_t tokens (token 3t+1), (B, K, C)."""
        x = self.embed(returns_to_go, states, actions, timesteps)  # (B, 3K, C)
        for block in self.blocks:
            x = block(x)  # (B, 3K, C)
        x = self.final_norm(x)
        return x.reshape(-1, self.config.context_length, 3, self.config.n_embd)[:, :, 1]  # (B, K, C)

    def last_step_logits(
        self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor
    ) -> Tensor:
        """forward(...)[:, -1] with less work, (B, A): the last block computes the s_{K-1} token only, which
        sees every token but the final a_{K-1} (so the last action input is never read)."""
        x = self.embed(returns_to_go, states, actions, timesteps)  # (B, 3K, C)
        for block in self.blocks[:-1]:
            x = block(x)  # (B, 3K, C)
        final_block: Block = self.blocks[-1]  # type: ignore[assignment]
        last = final_block.forward_last(x[:, : self.config.tokens - 1])  # (B, C): the s_{K-1} token
        return self.head(self.final_norm(last))  # (B, A)

    def forward(self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        """Action logits (B, K, A). Inputs: scaled return-to-go (B, K, 1), scaled states (B, K, S),
        action indices (B, K) (the last one is never read for the last step's logits), timesteps (B, K)."""
        expected = (self.config.context_length, self.config.state_dim)
        if not torch.jit.is_tracing() and tuple(states.shape[1:]) != expected:
            raise ValueError(
                f"expected states (batch, {expected[0]}, {expected[1]}), got {tuple(states.shape)}"
            )
        return self.head(self.hidden_states(returns_to_go, states, actions, timesteps))  # (B, K, A)


class DecisionTransformerPolicy(nn.Module):
    """The inference wrapper that is exported to ONNX: logits of the last step only, (B, A).

    Inputs are the last K steps, oldest first: returns_to_go (B, K, 1) float32 (scaled by the
    manifest's rtg_scale), states (B, K, S) float32 (transformed and scaled as the manifest says),
    actions (B, K) int64 (the last entry is a placeholder: a_{K-1} is what is being chosen), timesteps
    (B, K) int64 in [0, max_timestep). Trading runs it with B = 1.
    """

    def __init__(self, model: DecisionTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, returns_to_go: Tensor, states: Tensor, actions: Tensor, timesteps: Tensor) -> Tensor:
        return self.model.last_step_logits(returns_to_go, states, actions, timesteps)  # (B, A)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
