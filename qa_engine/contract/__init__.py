"""The artifact contract: the one thing training (`qa_engine.models`) and trading (`qa_engine.inference`,
actors, strategies, replay, live) share. Torch-free (pydantic, numpy); it imports neither side.

An artifact is a folder `model.onnx` + `manifest.json`. Here:

- `manifest`: the shared `ArtifactManifest` (feature set and hash, window, scaler, tensors, data, folds,
  code version, metrics), `write_manifest` / `read_manifest`, `MANIFEST_TYPES` (model kind -> its
  manifest model), `code_version`.
- `guardian`: the `guardian` section and manifest; `RegimeConfig`, `RegimeModel` and the persistence
  filter `RegimeTracker` that training fits and trading replays.
- `strategist`: the `strategist` section and manifest.
- `policy_context`: what the Strategist's policy sees: the action space, `StateTransform` (and
  `state_transform_for`), and `StrategistContext` (the last K steps with the reward accounting).
- `baseline`: the `baseline` section and manifest, `read_baseline_manifest`, and the ensemble of the
  classifiers' probabilities (`ensemble_probabilities`, `DEFAULT_ENSEMBLE_WEIGHTS`).
- `labels`: the SELL / HOLD / BUY classes and the forward-return label rule.

This __init__ imports nothing. `tests/unit/test_dependency_direction.py` checks that the trading side
imports neither `qa_engine.models` nor torch.
"""
