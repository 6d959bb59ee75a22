"""The Guardian: a contrastive VAE over feature windows; market regimes by k-means on its latent space.

Built from one frozen `GuardianConfig`; its input width `n_features` is derived from the feature
table at training time (`train_guardian`), never typed by hand. Data flow:

    x (B, T, F) scaled features of the bars t-T+1 .. t (the window ends at bar t, nothing after it)
      -> encoder: 1x1 conv F->C, `encoder_layers` residual dilated conv blocks (dilation 1, 2, 4 ..),
         pooled over time as [mean over T, last step]                                   (B, 2C)
      -> linear heads: latent mean mu and log-variance                                  (B, D), (B, D)
      -> z = mu + sigma * eps (reparameterisation, training only)
      -> decoder: linear D -> C*T, conv, 1x1 conv C->F: the reconstructed window        (B, T, F)
      -> projection head on mu (contrastive views only)                                 (B, P)

Loss = reconstruction + beta * KL + contrastive_weight * NT-Xent, where
- reconstruction: mean squared error per element of the clean window (inputs are standardised);
- KL: KL(q(z|x) || N(0, I)) summed over the D latent dims, averaged over the batch;
- NT-Xent (SimCLR's InfoNCE): two augmented views of each window are positives, the 2B-2 other views
  of the batch are negatives, cosine similarity / contrastive_temperature, on the projected mu.

Augmentations (`augment`), applied independently to each window, in this order; every one reads only
the window it is given (B, T, F) and never another sample of the batch, so none can see bars after t:
1. crop-and-resize: a random contiguous crop of round(u*T) bars, u ~ U[crop_min_fraction, 1], placed
   anywhere inside the window, stretched back to T bars by linear interpolation (indices stay in
   [0, T-1]);
2. random scaling: each feature of the window times (1 + scale_std * N(0, 1));
3. Gaussian jitter: + jitter_std * N(0, 1) per element; inputs are standardised on the training
   fold, so jitter_std is in units of each feature's training standard deviation;
4. time masking: `mask_bars` consecutive bars at a random position set to 0 (the training mean).

Regimes, risk scales and the persistence rule live in `qa_engine.models.guardian.regimes` (torch-free).
`GuardianInference` is what is exported to ONNX: scaled window (batch, T, F) -> regime probabilities
(batch, K) and latent mean (batch, D), the ordered centroids and the softmax temperature baked in as
constants. The scaler is applied outside the graph by `qa_engine.inference.scaling.FeatureScaler`
from the manifest, the same code as in training (the contract every artifact follows).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import NamedTuple

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

from qa_engine.contract.guardian import RegimeConfig
from qa_engine.contract.guardian import RegimeModel
from qa_engine.errors import ConfigError


@dataclass(frozen=True)
class GuardianConfig:
    """Sizes, loss weights, augmentations and regime rules of the Guardian (one config, in checkpoints)."""

    n_features: int | None = None  # F: derived from the feature table by train_guardian
    window_bars: int = 32  # T: bars per window, ending at the bar being assessed
    latent_dim: int = 8  # D
    hidden_size: int = 32  # C: conv channels
    encoder_layers: int = 3  # residual dilated conv blocks, dilation 2**i
    kernel_size: int = 3
    projection_size: int = 16  # P: contrastive projection head width
    dropout: float = 0.0
    beta: float = 0.01  # KL weight
    contrastive_weight: float = 0.1
    contrastive_temperature: float = 0.5
    jitter_std: float = 0.05  # in training standard deviations
    scale_std: float = 0.1
    mask_bars: int = 4
    crop_min_fraction: float = 0.8
    feature_clip: float = 5.0  # scaled features are clipped to +-feature_clip
    regimes: RegimeConfig = field(default_factory=RegimeConfig)

    def __post_init__(self) -> None:
        if self.n_features is not None and self.n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {self.n_features}")
        if self.window_bars < 4:
            raise ValueError(f"window_bars must be >= 4, got {self.window_bars}")
        for name in ("latent_dim", "hidden_size", "encoder_layers", "projection_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.beta < 0 or self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError("beta and contrastive_weight must be >= 0, contrastive_temperature > 0")
        if self.jitter_std < 0 or self.scale_std < 0 or not 0 <= self.mask_bars < self.window_bars:
            raise ValueError("jitter_std, scale_std >= 0 and 0 <= mask_bars < window_bars")
        if not 0.0 < self.crop_min_fraction <= 1.0:
            raise ValueError(f"crop_min_fraction must be in (0, 1], got {self.crop_min_fraction}")
        if self.feature_clip <= 0:
            raise ValueError(f"feature_clip must be > 0, got {self.feature_clip}")
        if isinstance(self.regimes, dict):  # rebuilt from a checkpoint / manifest dict
            object.__setattr__(self, "regimes", RegimeConfig(**self.regimes))

    @property
    def n_regimes(self) -> int:
        return self.regimes.n_regimes

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GuardianConfig:
        return cls(**values)


# ---- augmentations ----------------------------------------------------------------------------


def augment(x: Tensor, config: GuardianConfig, generator: torch.Generator | None = None) -> Tensor:
    """One random view of each window (see the module docstring); x (B, T, F) -> (B, T, F)."""
    batch, bars, features = x.shape
    options = {"generator": generator, "device": x.device}
    # 1. crop-and-resize: position j of the view reads p_j = start + j * (L - 1) / (T - 1), 0 <= p_j <= T-1
    fraction = config.crop_min_fraction + (1.0 - config.crop_min_fraction) * torch.rand(batch, **options)
    length = torch.clamp(torch.round(fraction * bars), 2, bars)  # (B,)
    start = torch.floor(torch.rand(batch, **options) * (bars - length + 1))  # (B,)
    step = (length - 1) / (bars - 1)  # (B,)
    position = start[:, None] + torch.arange(bars, device=x.device)[None, :] * step[:, None]  # (B, T)
    position = torch.clamp(position, 0, bars - 1)
    lower = torch.floor(position).long()  # (B, T)
    upper = torch.clamp(lower + 1, max=bars - 1)
    weight = (position - lower).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    gather_lower = torch.gather(x, 1, lower.unsqueeze(-1).expand(batch, bars, features))  # (B, T, F)
    gather_upper = torch.gather(x, 1, upper.unsqueeze(-1).expand(batch, bars, features))  # (B, T, F)
    view = gather_lower + weight * (gather_upper - gather_lower)
    # 2. random scaling per (window, feature)
    view = view * (1.0 + config.scale_std * torch.randn(batch, 1, features, **options))
    # 3. Gaussian jitter per element
    view = view + config.jitter_std * torch.randn(batch, bars, features, **options)
    # 4. time masking: mask_bars consecutive bars at a random position -> 0
    if config.mask_bars:
        first = torch.floor(torch.rand(batch, **options) * (bars - config.mask_bars + 1))  # (B,)
        offset = torch.arange(bars, device=x.device)[None, :] - first[:, None]  # (B, T)
        keep = ~((offset >= 0) & (offset < config.mask_bars))  # (B, T)
        view = view * keep.unsqueeze(-1).to(x.dtype)
    return view


# ---- the network ------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """x + dropout(GELU(conv_dilated(x))), 'same' padding over the T bars of one window."""

    def __init__(self, config: GuardianConfig, dilation: int) -> None:
        super().__init__()
        padding = dilation * (config.kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            config.hidden_size, config.hidden_size, config.kernel_size, padding=padding, dilation=dilation
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return x + self.dropout(F.gelu(self.conv(x)))


class Encoder(nn.Module):
    """(B, T, F) window -> latent mean and log-variance (B, D) each."""

    def __init__(self, config: GuardianConfig) -> None:
        super().__init__()
        assert config.n_features is not None
        self.input = nn.Conv1d(config.n_features, config.hidden_size, kernel_size=1)
        self.blocks = nn.ModuleList(ConvBlock(config, 2**i) for i in range(config.encoder_layers))
        self.mean = nn.Linear(2 * config.hidden_size, config.latent_dim)
        self.log_variance = nn.Linear(2 * config.hidden_size, config.latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.input(x.transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            h = block(h)
        pooled = torch.cat([h.mean(dim=2), h[:, :, -1]], dim=1)  # (B, 2C)
        # two heads, not one split in two: the exported graph keeps a static latent width
        return self.mean(pooled), self.log_variance(pooled).clamp(-10.0, 10.0)  # (B, D), (B, D)


class Decoder(nn.Module):
    """(B, D) latent -> (B, T, F) reconstructed window."""

    def __init__(self, config: GuardianConfig) -> None:
        super().__init__()
        assert config.n_features is not None
        self.hidden_size = config.hidden_size
        self.window_bars = config.window_bars
        self.expand = nn.Linear(config.latent_dim, config.hidden_size * config.window_bars)
        self.conv = nn.Conv1d(
            config.hidden_size, config.hidden_size, config.kernel_size, padding=(config.kernel_size - 1) // 2
        )
        self.output = nn.Conv1d(config.hidden_size, config.n_features, kernel_size=1)

    def forward(self, z: Tensor) -> Tensor:
        h = F.gelu(self.expand(z)).view(-1, self.hidden_size, self.window_bars)  # (B, C, T)
        h = h + F.gelu(self.conv(h))  # (B, C, T)
        return self.output(h).transpose(1, 2)  # (B, T, F)


class LossParts(NamedTuple):
    total: Tensor
    reconstruction: Tensor
    kl: Tensor
    contrastive: Tensor


def nt_xent(first: Tensor, second: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent: row i of `first` and of `second` are positives; the other 2B-2 rows negatives."""
    count = first.shape[0]
    z = F.normalize(torch.cat([first, second], dim=0), dim=1)  # (2B, P)
    similarity = z @ z.T / temperature  # (2B, 2B)
    self_mask = torch.eye(2 * count, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(z.device)  # (2B,)
    return F.cross_entropy(similarity, targets)


class ContrastiveVAE(nn.Module):
    """VAE (encoder, decoder) with a contrastive projection head on the latent mean."""

    def __init__(self, config: GuardianConfig) -> None:
        super().__init__()
        if config.n_features is None:
            raise ConfigError("GuardianConfig.n_features is unset: derive it from the feature table first")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.projection = nn.Sequential(
            nn.Linear(config.latent_dim, config.projection_size),
            nn.GELU(),
            nn.Linear(config.projection_size, config.projection_size),
        )

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, F) -> reconstruction (B, T, F), latent mean (B, D), log-variance (B, D).
        The latent is sampled in training mode and is the mean in eval mode."""
        mean, log_variance = self.encoder(x)
        if self.training:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            z = mean + torch.exp(0.5 * log_variance) * noise  # (B, D)
        else:
            z = mean
        return self.decoder(z), mean, log_variance

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> LossParts:
        config = self.config
        reconstruction, mean, log_variance = self(x, generator)
        reconstruction_loss = F.mse_loss(reconstruction, x)
        kl = (-0.5 * (1 + log_variance - mean.pow(2) - log_variance.exp()).sum(dim=1)).mean()
        contrastive = torch.zeros((), device=x.device)
        if config.contrastive_weight > 0:
            first, _ = self.encoder(augment(x, config, generator))  # (B, D)
            second, _ = self.encoder(augment(x, config, generator))  # (B, D)
            contrastive = nt_xent(
                self.projection(first), self.projection(second), config.contrastive_temperature
            )
        total = reconstruction_loss + config.beta * kl + config.contrastive_weight * contrastive
        return LossParts(total, reconstruction_loss, kl, contrastive)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def guardian_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The shared trainer's loss function. In eval mode (validation) the augmentations and the latent
    sample draw from a generator seeded with 0 on every call, so validation losses of different
    epochs are comparable and validation never consumes the training RNG."""
    assert isinstance(model, ContrastiveVAE)
    generator = None if model.training else torch.Generator().manual_seed(0)
    return model.loss(batch["x"], generator).total


class GuardianInference(nn.Module):
    """The exported graph: scaled window (B, T, F) -> regime probabilities (B, K), latent mean (B, D)."""

    def __init__(self, encoder: Encoder, regimes: RegimeModel) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("centroids", torch.tensor(regimes.centroids, dtype=torch.float32))  # (K, D)
        self.inverse_temperature = float(1.0 / regimes.temperature)

    def forward(self, window: Tensor) -> tuple[Tensor, Tensor]:
        mean, _ = self.encoder(window)  # (B, D)
        distance = (mean.unsqueeze(1) - self.centroids.unsqueeze(0)).pow(2).sum(dim=2)  # (B, K)
        return torch.softmax(-distance * self.inverse_temperature, dim=1), mean
