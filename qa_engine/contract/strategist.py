"""The Strategist's manifest: its section and the artifact manifest that carries it (torch-free, so
qa_engine.inference can read strategist artifacts with `read_manifest`)."""

from __future__ import annotations

from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

from qa_engine.contract.manifest import ArtifactManifest


class StrategistSection(BaseModel):
    """What only the Strategist's artifact holds (the `strategist` section; the kind is registered in
    `qa_engine.contract.manifest.MANIFEST_TYPES`). Inputs, in order: returns_to_go (batch, K, 1) =
    R / rtg_scale; states (batch, K, S) = scaler(StateTransform(features, close)); actions (batch, K)
    int64 indices into action_positions (the last one is a placeholder); timesteps (batch, K) int64 =
    step in the episode (0 .. episode_bars-1). Output: action_logits (batch, A) for the last step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context_length: int = Field(ge=1)
    action_positions: list[float] = Field(min_length=2, description="target position of each action index")
    episode_bars: int = Field(
        ge=1, description="timesteps restart and R restarts at the target every episode"
    )
    rtg_scale: float = Field(gt=0)
    taker_fee_rate: float = Field(ge=0, description="fee per unit of turnover used in the rewards")
    target_return: float = Field(description="default R at an episode start, log-return units")
    target_return_choices: dict[str, float] = Field(description="quantiles of training episode returns")
    state_transform: list[Literal["raw", "level", "difference"]] = Field(description="per feature, in order")
    behaviours: list[str]
    behaviour_seed: int = Field(
        0, ge=0, description="seed of the behaviour policies' noise (replays them next to the model)"
    )
    return_weighting: dict[str, Any]
    training_episodes: int = Field(ge=1)
    training_data_sha256: str = Field(description="sha256 of ts, close and raw features of the training rows")


class StrategistArtifactManifest(ArtifactManifest):
    """The shared manifest with model_kind 'strategist' and its section (registered in MANIFEST_TYPES)."""

    model_kind: Literal["strategist"] = "strategist"  # type: ignore[assignment]
    strategist: StrategistSection

    @model_validator(mode="after")
    def _consistent(self) -> StrategistArtifactManifest:
        count = len(self.feature_set.names)
        if len(self.strategist.state_transform) != count:
            raise ValueError(
                f"state_transform has {len(self.strategist.state_transform)} entries for {count} features"
            )
        if self.strategist.context_length != self.window.encoder_bars:
            raise ValueError("strategist.context_length differs from window.encoder_bars")
        return self
