"""The tiny Guardian used by the tests (model and trainer settings that train in seconds on real bars)."""

from __future__ import annotations

from qa_engine.contract.guardian import RegimeConfig
from qa_engine.models.guardian.network import GuardianConfig
from qa_engine.models.training import TrainerConfig

TINY = GuardianConfig(
    window_bars=16,
    latent_dim=4,
    hidden_size=8,
    encoder_layers=2,
    projection_size=8,
    regimes=RegimeConfig(kmeans_restarts=2),
)
TINY_TRAINER = TrainerConfig(
    max_epochs=1,
    batch_size=128,
    train_windows_per_epoch=512,
    validation_windows=256,
    warmup_steps=0,
    threads=1,
)
