"""Feature specs and feature sets: what a feature is, what it needs, and a stable hash of a set.

A `FeatureSpec` names one output column and says how to compute it (`kind` + `params`), which
inputs it needs, how many bars it needs before its value is valid (`warmup_bars`) and, where an
input may be missing, which declared fallback to use. A `FeatureSet` is a named, versioned,
ordered tuple of specs; its `hash` (sha256 of a canonical JSON) goes into model manifests and into
the metadata of every feature table, so a model can refuse features computed differently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import replace
from typing import Literal

from qa_engine.errors import ConfigError
from qa_engine.errors import DataError

# The inputs a bar feature may need. OHLCV is always present in a catalog; the others are optional
# columns of a bar table (taker buy volume from Binance klines; best bid/ask and trades aggregated
# per bar by whoever builds the table).
Input = Literal["ohlcv", "taker_buy_volume", "best_bid_ask", "trades"]
ALL_INPUTS: tuple[Input, ...] = ("ohlcv", "taker_buy_volume", "best_bid_ask", "trades")

# The columns each optional input brings into a bar table.
INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "ohlcv": ("open", "high", "low", "close", "volume"),
    "taker_buy_volume": ("taker_buy_volume",),
    "best_bid_ask": ("bid_price", "ask_price", "bid_size", "ask_size"),
    "trades": ("trade_count",),
}

ParamValue = int | float | str | bool | None


@dataclass(frozen=True)
class Fallback:
    """What to compute instead when an input is missing: another kind over fewer inputs."""

    kind: str
    inputs: tuple[Input, ...]
    params: tuple[tuple[str, ParamValue], ...] = ()
    description: str = ""
    warmup_bars: int | None = None  # None: the primary's warm-up


@dataclass(frozen=True)
class FeatureSpec:
    """One output column.

    name: the column name. kind: the registered computation (see `registry.KINDS`). params: sorted
    (key, value) pairs, part of the hash. inputs: what the primary computation needs.
    warmup_bars: bars of history (this bar included) before the value is valid; earlier values are
    null (batch) or NaN (streaming), never a number. version: bump when the formula changes.
    fallback: used when an input is missing; without one, a missing input refuses the build.
    """

    name: str
    kind: str
    params: tuple[tuple[str, ParamValue], ...]
    inputs: tuple[Input, ...]
    warmup_bars: int
    version: int = 1
    fallback: Fallback | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.warmup_bars < 1:
            raise ConfigError(f"feature '{self.name}': warmup_bars must be >= 1, got {self.warmup_bars}")
        keys = [key for key, _ in self.params]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise ConfigError(f"feature '{self.name}': params must be unique and sorted by key, got {keys}")

    def param(self, key: str) -> ParamValue:
        for name, value in self.params:
            if name == key:
                return value
        raise KeyError(f"feature '{self.name}' has no parameter '{key}'")

    def with_params(self, **updates: ParamValue) -> FeatureSpec:
        merged = dict(self.params)
        merged.update(updates)
        return replace(self, params=tuple(sorted(merged.items())))

    def canonical(self) -> dict:
        """The part of a spec that defines its values (what the hash covers)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": [[key, value] for key, value in self.params],
            "inputs": list(self.inputs),
            "warmup_bars": self.warmup_bars,
            "version": self.version,
            "fallback": None
            if self.fallback is None
            else {
                "kind": self.fallback.kind,
                "inputs": list(self.fallback.inputs),
                "params": [[key, value] for key, value in self.fallback.params],
                "warmup_bars": self.fallback.warmup_bars,
            },
        }


def params(**values: ParamValue) -> tuple[tuple[str, ParamValue], ...]:
    """Keyword arguments -> the sorted (key, value) tuple a spec stores."""
    return tuple(sorted(values.items()))


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned, ordered list of feature specs with a stable hash."""

    name: str
    version: int
    specs: tuple[FeatureSpec, ...]
    description: str = ""

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"feature set '{self.name}': duplicate feature names {duplicates}")
        if not self.specs:
            raise ConfigError(f"feature set '{self.name}' is empty")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature of the set is valid."""
        return max(spec.warmup_bars for spec in self.specs)

    def canonical_json(self) -> str:
        document = {
            "name": self.name,
            "version": self.version,
            "specs": [spec.canonical() for spec in self.specs],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the ordered specs: stable across runs and processes."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def spec(self, name: str) -> FeatureSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise ConfigError(f"feature set '{self.name}' has no feature '{name}'; it has {list(self.names)}")

    def replace_spec(self, spec: FeatureSpec) -> FeatureSet:
        specs = tuple(spec if existing.name == spec.name else existing for existing in self.specs)
        return replace(self, specs=specs)

    def resolve(self, available_inputs: set[str] | frozenset[str]) -> FeatureSet:
        """The set as it will be computed on data that has `available_inputs`.

        A spec whose inputs are all present stays; one with a missing input switches to its declared
        fallback (recorded in the spec, so the hash changes); one without a fallback makes the whole
        set refuse, with a message naming every such feature and input.
        """
        resolved: list[FeatureSpec] = []
        refused: list[str] = []
        for spec in self.specs:
            missing = [item for item in spec.inputs if item not in available_inputs]
            if not missing:
                resolved.append(spec)
                continue
            fallback = spec.fallback
            if fallback is not None and all(item in available_inputs for item in fallback.inputs):
                merged = dict(spec.params)
                merged.update(dict(fallback.params))
                resolved.append(
                    replace(
                        spec,
                        kind=fallback.kind,
                        inputs=fallback.inputs,
                        params=tuple(sorted(merged.items())),
                        fallback=None,
                        warmup_bars=fallback.warmup_bars or spec.warmup_bars,
                        description=f"{spec.description} [fallback: {fallback.description}]",
                    )
                )
                continue
            refused.append(f"{spec.name} (needs {', '.join(missing)})")
        if refused:
            have = ", ".join(sorted(available_inputs)) or "nothing"
            raise DataError(
                f"feature set '{self.name}' cannot be built: the data has {have}; missing inputs for "
                f"{'; '.join(refused)}. Supply those columns, or use a feature set without these features."
            )
        return replace(self, specs=tuple(resolved))


def available_inputs(columns: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    """Which inputs a bar table with these columns provides."""
    present = set(columns)
    return frozenset(name for name, needed in INPUT_COLUMNS.items() if all(c in present for c in needed))
