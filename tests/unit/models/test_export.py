"""The shared ONNX export helpers: parity keeps integer inputs integer (ids, actions, timesteps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from qa_engine.models.export import export_onnx  # noqa: E402
from qa_engine.models.export import parity_max_abs_diff  # noqa: E402


class EmbedAndScale(nn.Module):
    """An int64 token input (embedding lookup) next to a float32 one: both must reach the graph typed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(11, 4)
        self.linear = nn.Linear(3, 4)

    def forward(self, values: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(values) + self.embedding(tokens)  # (B, T, 4)


def test_parity_feeds_integer_inputs_as_int64_and_floats_as_float32(tmp_path: Path) -> None:
    model = EmbedAndScale().eval()
    rng = np.random.default_rng(0)
    values = rng.standard_normal((5, 6, 3))  # float64 on purpose: cast to float32 for both sides
    tokens = rng.integers(0, 11, (5, 6))  # int64 token ids
    exported = export_onnx(
        model,
        {"values": torch.from_numpy(values[:1].astype(np.float32)), "tokens": torch.from_numpy(tokens[:1])},
        ["out"],
        tmp_path / "m.onnx",
    )

    assert [record.dtype for record in exported.inputs] == ["float32", "int64"]
    assert parity_max_abs_diff(model, exported.path, {"values": values, "tokens": tokens}) <= 1e-6
    assert (
        parity_max_abs_diff(model, exported.path, {"values": values, "tokens": tokens.astype(np.int32)})
        <= 1e-6
    )
