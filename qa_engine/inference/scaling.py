"""Feature standardisation shared by training and inference (numpy only).

One implementation on both sides of the artifact contract: training fits it on the training split and
writes its parameters into the manifest; inference rebuilds it from the manifest and applies the very
same function, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa_engine.errors import DataError

MIN_STD = 1e-12  # a feature with a smaller training std is constant there: it is centred, not scaled


@dataclass(frozen=True)
class FeatureScaler:
    """x -> clip((x - mean) / std, -clip, +clip), per feature, in float64."""

    names: tuple[str, ...]
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    clip: float

    def __post_init__(self) -> None:
        if self.mean.shape != (len(self.names),) or self.std.shape != (len(self.names),):
            raise DataError(
                f"scaler has {len(self.names)} names but mean {self.mean.shape} and std {self.std.shape}"
            )
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise DataError("scaler mean/std must be finite and std > 0")

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(..., F) raw features -> (..., F) scaled and clipped (float64)."""
        if values.shape[-1] != len(self.names):
            raise DataError(f"expected {len(self.names)} features in the last axis, got shape {values.shape}")
        scaled = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return np.clip(scaled, -self.clip, self.clip)


def fit_feature_scaler(train_values: np.ndarray, names: tuple[str, ...], clip: float) -> FeatureScaler:
    """Mean and population std per feature over the training rows (N, F) only."""
    if train_values.ndim != 2 or train_values.shape[0] < 2:
        raise DataError(
            f"need at least 2 training rows of features to fit a scaler, got {train_values.shape}"
        )
    if not np.all(np.isfinite(train_values)):
        raise DataError("training features contain NaN/inf; the feature table should have none")
    mean = train_values.mean(axis=0)
    std = train_values.std(axis=0)
    std = np.where(std < MIN_STD, 1.0, std)
    return FeatureScaler(tuple(names), mean, std, float(clip))
