"""Load a model artifact (model.onnx + manifest.json) and check it against what it will be fed.

onnxruntime only; nothing here imports torch. `load_artifact` refuses, with a ConfigError that names
every difference, an artifact whose manifest does not match:
- the feature set the caller will compute: its hash must be the fitted set's (`Artifact.feature_set()`
  rebuilds it); if not, the message says which names are missing, extra or out of order and which
  specs differ (`Artifact.check_registered` compares the code's registered set with the one the
  model was fitted from),
- the window the caller will feed (encoder length) and the bar interval,
- its own model.onnx (file hash, input and output names and shapes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qa_engine.contract.manifest import ArtifactManifest
from qa_engine.contract.manifest import read_manifest
from qa_engine.errors import ConfigError
from qa_engine.features.spec import FeatureSet
from qa_engine.features.spec import FeatureSpec


@dataclass(frozen=True)
class Artifact:
    folder: Path
    manifest: ArtifactManifest

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest.model_file

    def feature_set(self) -> FeatureSet:
        """The exact (fitted) feature set the model needs, rebuilt from the manifest's canonical specs;
        a FeatureActor computes this set (its hash equals the manifest's)."""
        return feature_set_from_canonical(self.manifest.feature_set.canonical)

    def check_registered(self, registered: FeatureSet) -> None:
        """Refuse (ConfigError) if the code's registered set no longer is the one this model was fitted
        from (`declared_hash`): the feature code changed since training, so retrain the model."""
        record = self.manifest.feature_set
        if registered.hash == record.declared_hash:
            return
        lines = [
            f"the registered feature set '{registered.name}' v{registered.version} (hash "
            f"{registered.hash[:12]}...) is not the one the model was fitted from "
            f"({record.declared_hash[:12]}...): the feature code changed since training; retrain the model"
        ]
        lines += describe_feature_differences(registered.names, tuple(record.names))
        raise ConfigError(f"artifact {self.folder}:\n  - " + "\n  - ".join(lines))


def feature_set_from_canonical(document: dict) -> FeatureSet:
    """A FeatureSet from its canonical JSON (`FeatureSet.canonical_json()`); the hash round-trips."""
    from qa_engine.features.spec import Fallback

    specs = []
    for item in document["specs"]:
        fallback = item.get("fallback")
        specs.append(
            FeatureSpec(
                name=item["name"],
                kind=item["kind"],
                params=tuple((key, value) for key, value in item["params"]),
                inputs=tuple(item["inputs"]),
                warmup_bars=int(item["warmup_bars"]),
                version=int(item["version"]),
                fallback=None
                if fallback is None
                else Fallback(
                    kind=fallback["kind"],
                    inputs=tuple(fallback["inputs"]),
                    params=tuple((key, value) for key, value in fallback["params"]),
                    warmup_bars=fallback["warmup_bars"],
                ),
            )
        )
    feature_set = FeatureSet(name=document["name"], version=int(document["version"]), specs=tuple(specs))
    return feature_set


def cpu_session(path: Path, threads: int = 1):
    """The onnxruntime CPU session every runner, exporter check and evaluation uses: `threads` intra-op
    threads, one inter-op thread, sequential execution, every graph optimisation, warnings only (a bar at
    a time needs no thread pool of its own)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_feature_differences(expected: tuple[str, ...], manifest_names: tuple[str, ...]) -> list[str]:
    """Human-readable differences between two ordered feature-name lists."""
    lines = []
    missing = [name for name in manifest_names if name not in expected]
    extra = [name for name in expected if name not in manifest_names]
    if missing:
        lines.append(f"the model needs features the feed lacks: {missing}")
    if extra:
        lines.append(f"the feed has features the model was not trained on: {extra}")
    if not missing and not extra and expected != manifest_names:
        position = next(i for i, (a, b) in enumerate(zip(expected, manifest_names, strict=True)) if a != b)
        lines.append(
            f"feature order differs from position {position}: the model expects "
            f"'{manifest_names[position]}' there, the feed has '{expected[position]}'"
        )
    return lines


def _spec_differences(expected: FeatureSet, manifest_canonical: dict) -> list[str]:
    mine = {spec["name"]: spec for spec in (s.canonical() for s in expected.specs)}
    theirs = {spec["name"]: spec for spec in manifest_canonical.get("specs", [])}
    lines = []
    for name in sorted(set(mine) & set(theirs)):
        if mine[name] != theirs[name]:
            keys = sorted(
                k for k in set(mine[name]) | set(theirs[name]) if mine[name].get(k) != theirs[name].get(k)
            )
            detail = ", ".join(
                f"{k}: model {theirs[name].get(k)!r} vs feed {mine[name].get(k)!r}" for k in keys
            )
            lines.append(f"feature '{name}' is computed differently ({detail})")
    return lines


def check_feature_set(manifest: ArtifactManifest, expected: FeatureSet, where: str) -> None:
    """Accept `expected` only if its hash is the manifest's: the fitted set, exactly what the model was
    trained on. The registered set before fitting (the manifest's `declared_hash`) is refused too: its
    fitted parameters (the FFD order) differ, so its values would; the message says what to compute."""
    record = manifest.feature_set
    names = tuple(record.names)
    if expected.hash == record.hash:
        if expected.names != names:  # the hash covers the ordered specs, so this cannot happen
            raise ConfigError(f"{where}: feature-set hash matches but names differ; the manifest was edited")
        return
    if expected.hash == record.declared_hash:
        lines = [
            f"feature set '{expected.name}' is the registered set before fitting; the model was trained on "
            "the set fitted on its training range; compute Artifact.feature_set() (the manifest's specs)"
        ]
        lines += _spec_differences(expected, record.canonical)
        raise ConfigError(f"{where}: refusing to load:\n  - " + "\n  - ".join(lines))
    lines = [
        f"feature set '{expected.name}' v{expected.version} hash {expected.hash[:12]}... does not match "
        f"the model's '{record.name}' v{record.version} hash {record.hash[:12]}... "
        f"(declared {record.declared_hash[:12]}...)"
    ]
    lines += describe_feature_differences(expected.names, names)
    lines += _spec_differences(expected, record.canonical)
    raise ConfigError(f"{where}: refusing to load:\n  - " + "\n  - ".join(lines))


def _check_model_file(artifact: Artifact) -> None:
    import onnxruntime as ort

    manifest = artifact.manifest
    path = artifact.model_path
    if not path.is_file():
        raise ConfigError(f"{artifact.folder}: {manifest.model_file} is missing")
    digest = _sha256(path)
    if digest != manifest.model_sha256:
        raise ConfigError(
            f"{path}: sha256 {digest[:12]}... differs from the manifest's {manifest.model_sha256[:12]}...; "
            "the model file and its manifest do not belong together"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for kind, actual, recorded in (
        ("input", session.get_inputs(), manifest.inputs),
        ("output", session.get_outputs(), manifest.outputs),
    ):
        actual_spec = [
            (value.name, [d if isinstance(d, int) else "batch" for d in value.shape]) for value in actual
        ]
        recorded_spec = [(record.name, list(record.shape)) for record in recorded]
        if actual_spec != recorded_spec:
            raise ConfigError(f"{path}: {kind}s {actual_spec} differ from the manifest's {recorded_spec}")
    window = manifest.window
    # The feature window is the first input, except for the Strategist (its `states` input).
    features = next((r for r in manifest.inputs if r.name == "states"), manifest.inputs[0]).shape
    if len(features) == 3 and features[1:] != [window.encoder_bars, len(manifest.feature_set.names)]:
        raise ConfigError(
            f"{artifact.folder}: manifest window says {window.encoder_bars} bars x "
            f"{len(manifest.feature_set.names)} features but model.onnx takes {features[1:]}"
        )


def _check_own_feature_hash(artifact: Artifact, where: str) -> None:
    """The manifest's feature-set hash must be the hash of its own canonical specs: an edited hash (or
    edited specs) would let two altered artifacts agree with each other and feed the model features it
    was never trained on."""
    record = artifact.manifest.feature_set
    try:
        rebuilt = artifact.feature_set()
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: manifest.json feature_set.canonical is malformed ({exc!r})") from None
    if rebuilt.hash != record.hash:
        raise ConfigError(
            f"{where}: refusing to load: manifest.json says feature_set.hash {record.hash[:12]}... but "
            f"its own feature specs hash to {rebuilt.hash[:12]}...; the manifest was edited: restore it "
            "or retrain"
        )


def load_artifact(
    folder: Path,
    expected_feature_set: FeatureSet | None = None,
    window_bars: int | None = None,
    interval: str | None = None,
) -> Artifact:
    """Read and check an artifact folder; see the module docstring for what is refused.

    expected_feature_set: the set the caller will compute (it must be the fitted set); None skips
    that check (tools that only inspect). window_bars / interval: what the caller will feed.
    """
    folder = Path(folder)
    artifact = Artifact(folder, read_manifest(folder))
    manifest = artifact.manifest
    where = f"artifact {folder}"
    _check_model_file(artifact)
    _check_own_feature_hash(artifact, where)
    if expected_feature_set is not None:
        check_feature_set(manifest, expected_feature_set, where)
    if window_bars is not None and window_bars != manifest.window.encoder_bars:
        raise ConfigError(
            f"{where}: refusing to load: the model takes windows of {manifest.window.encoder_bars} bars, "
            f"the feed provides {window_bars}"
        )
    if interval is not None and interval != manifest.window.interval:
        raise ConfigError(
            f"{where}: refusing to load: the model was trained on {manifest.window.interval} bars, "
            f"the feed provides {interval} bars"
        )
    return artifact
