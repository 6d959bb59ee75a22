"""Rolling volume profile: POC, VAH, VAL of the trailing window, and the close's distance to each.

Batch and streaming both call compiled kernels (the algorithm: `qa_engine.features.kernels`): the
batch twin bins every window afresh over strided views of the columns (no copies), the streaming
twin keeps each bar's bin until the window's extremes change.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from qa_engine.features.contexts import BAR_INDEX
from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import HIGH
from qa_engine.features.contexts import LOW
from qa_engine.features.contexts import NAN
from qa_engine.features.contexts import ONE_THIRD
from qa_engine.features.contexts import VOLUME
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import choice
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.common import positive_int
from qa_engine.features.spec import FeatureSpec

OUTPUTS = ("poc", "vah", "val", "poc_distance", "vah_distance", "val_distance")
LEVELS = ("poc", "vah", "val")


def volume_profile_spec(output: str, window_bars: int = 96, bins: int = 24, value_area: float = 0.7):
    level = output.removesuffix("_distance")
    what = f"(close - {level.upper()}) / close" if output.endswith("_distance") else level.upper()
    return make_spec(
        f"vp_{output}_{window_bars}",
        "volume_profile",
        warmup_bars=window_bars,
        description=(
            f"{what} of the volume profile of the last {window_bars} bars ({bins} bins over the "
            f"window's low..high, typical-price allocation, value area {value_area:.0%})"
        ),
        bins=bins,
        output=output,
        value_area=value_area,
        window_bars=window_bars,
    )


def _parameters(spec: FeatureSpec) -> tuple[int, int, float, str]:
    return (
        positive_int(spec.name, "window_bars", spec.param("window_bars")),
        positive_int(spec.name, "bins", spec.param("bins")),
        float(spec.param("value_area")),  # type: ignore[arg-type]
        choice(spec.name, "output", spec.param("output"), OUTPUTS),
    )


def _profile_batch(context: BatchContext, window: int, bins: int, value_area: float) -> dict[str, np.ndarray]:
    def build() -> dict[str, np.ndarray]:
        from qa_engine.features.compiled_kernels import volume_profile_batch  # numba: imported when used

        high, low, close, volume = (context.array(c) for c in ("high", "low", "close", "volume"))
        typical = (high + low + close) * ONE_THIRD
        count = len(close)
        levels = {name: np.full(count, np.nan) for name in LEVELS}
        if count < window:
            return levels
        typical_windows = sliding_window_view(typical, window)
        volume_windows = sliding_window_view(volume, window)
        # Window extremes by polars' O(n) rolling min / max (exact, so the same values as a min / max
        # over each (rows, window) slice, at a tenth of the cost on 1M bars).
        lowest = pl.Series(low).rolling_min(window).to_numpy()[window - 1 :]
        highest = pl.Series(high).rolling_max(window).to_numpy()[window - 1 :]
        rows = slice(window - 1, count)
        levels["poc"][rows], levels["vah"][rows], levels["val"][rows] = volume_profile_batch(
            typical_windows, volume_windows, lowest, highest, bins, value_area
        )
        return levels

    return context.memo(("volume_profile", window, bins, value_area), build)


def volume_profile_batch_feature(context: BatchContext, spec: FeatureSpec) -> np.ndarray:
    window, bins, value_area, output = _parameters(spec)
    levels = _profile_batch(context, window, bins, value_area)
    if output in LEVELS:
        return levels[output]
    close = context.array("close")
    return (close - levels[output.removesuffix("_distance")]) / close


def _profile_stream(
    context: StreamContext, window: int, bins: int, value_area: float
) -> tuple[str, str, str]:
    def build() -> tuple[str, str, str]:
        typical = context.typical_price()
        typical_view = context.window_array(typical, "typical", window)
        volume_view = context.window_array(VOLUME, "volume", window)
        lowest = context.rolling_min(LOW, "low", window)
        highest = context.rolling_max(HIGH, "high", window)
        # compiled_kernels.volume_profile_step's state: each bar's bin (a double-length ring) and
        # [window lowest, window highest, bins / span, ring position].
        bin_ring = context.state_array("profile_bins", [0] * (2 * window), integer=True)
        profile = context.state_array("profile_state", [NAN, NAN, 0.0, 0.0])
        poc, vah, val = context.name("poc"), context.name("vah"), context.name("val")
        context.emit(
            f"if {BAR_INDEX} >= {window - 1}:  # the ring buffers are full",
            f"    {poc}, {vah}, {val} = volume_profile_step({bin_ring}, {profile}, {typical_view}, "
            f"{volume_view}, {lowest}, {highest}, {bins}, {value_area!r})",
            "else:",
            f"    {poc} = {vah} = {val} = nan",
        )
        return poc, vah, val

    return context.memo(("volume_profile", window, bins, value_area), build)


def volume_profile_stream(context: StreamContext, spec: FeatureSpec) -> str:
    window, bins, value_area, output = _parameters(spec)
    variables = dict(zip(LEVELS, _profile_stream(context, window, bins, value_area), strict=True))
    if output in LEVELS:
        return variables[output]
    level = variables[output.removesuffix("_distance")]
    return context.temporary(f"{output}", f"({CLOSE} - {level}) / {CLOSE}")


KINDS = (
    FeatureKind(
        "volume_profile",
        volume_profile_batch_feature,
        volume_profile_stream,
        "rolling volume profile",
        engine="numpy",
    ),
)
