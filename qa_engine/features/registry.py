"""The explicit registry of feature kinds (kind name -> batch and streaming twins)."""

from __future__ import annotations

from functools import cache

from qa_engine.errors import ConfigError
from qa_engine.features.families.common import FeatureKind


@cache
def kinds() -> dict[str, FeatureKind]:
    """Every registered kind by name (built on first use, not at import time)."""
    from qa_engine.features.families import fracdiff
    from qa_engine.features.families import orderflow
    from qa_engine.features.families import returns
    from qa_engine.features.families import technical
    from qa_engine.features.families import volume_profile
    from qa_engine.features.families import wavelet

    registered: dict[str, FeatureKind] = {}
    for module in (technical, returns, fracdiff, orderflow, volume_profile, wavelet):
        for kind in module.KINDS:
            if kind.name in registered:
                raise RuntimeError(f"feature kind '{kind.name}' registered twice")
            registered[kind.name] = kind
    return registered


def kind_of(name: str) -> FeatureKind:
    registered = kinds()
    if name not in registered:
        raise ConfigError(f"unknown feature kind '{name}'; registered kinds: {', '.join(sorted(registered))}")
    return registered[name]
