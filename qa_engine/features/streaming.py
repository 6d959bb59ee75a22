"""Streaming twin: one engine that updates every feature of a set incrementally, bar by bar.

Design, for speed in CPython: the engine is ONE generated Python function. Every feature and
shared intermediate contributes a few lines of code to it (`contexts.StreamContext` collects them) and
keeps its state (ring buffers, running sums, EMA values) in variables of the enclosing factory,
so a bar costs straight-line arithmetic on local variables: no per-feature object, call or list
lookup (a first closure-per-feature design measured ~115 us/bar for the default set on this
2-core machine, this one about half; see bench/bench_features.py). Intermediates are shared by
key: the EMA-26 behind MACD and behind the `ema_26` feature is one line. Every step is O(1) or
O(window): window sums are running sums refreshed exactly every REFRESH_BARS bars (math.fsum),
EMAs use the exact recursion of polars' ewm_mean(adjust=False), windowed numerics (FFD, wavelet,
volume profile, OBV slope) call the same kernels as the batch twin on a contiguous view of a
double-length numpy ring buffer.

The generated source is kept on the engine (`engine.source`) for reading and debugging.
A gap (bar close times further apart than the interval) restarts every state, so the warm-up
restarts, as in the batch twin, which splits the table at gaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qa_engine.errors import DataError
from qa_engine.features.contexts import NAN
from qa_engine.features.contexts import StreamContext
from qa_engine.features.registry import kind_of
from qa_engine.features.spec import FeatureSet


class StreamingFeatureEngine:
    """Incremental features of one instrument's bars: `update` once per closed bar.

    `update` returns the feature values of the bar in set order, NaN where a feature is still in
    its warm-up; `warm` says whether every feature is past it. Bars must come in time order; a gap
    (close times more than one interval apart) restarts the warm-up.
    """

    def __init__(
        self, feature_set: FeatureSet, interval_ns: int, available: Sequence[str] = ("ohlcv",)
    ) -> None:
        self.feature_set = feature_set.resolve(frozenset(available))
        self.interval_ns = interval_ns
        self.names = self.feature_set.names
        self._warmups = [spec.warmup_bars for spec in self.feature_set.specs]
        self._set_warmup = self.feature_set.warmup_bars
        self._needs_taker = any("taker_buy_volume" in spec.inputs for spec in self.feature_set.specs)
        context = StreamContext(kind_of)
        outputs = [context.feature(spec) for spec in self.feature_set.specs]
        self._factory, self.source = context.compile(outputs)
        self.reset()

    def reset(self) -> None:
        """Forget every bar: fresh state, warm-up restarts."""
        self._update = self._factory()
        self._bar_index = -1
        self._last_ts: int | None = None

    @property
    def warm(self) -> bool:
        return self._bar_index >= self._set_warmup - 1

    @property
    def bars_in_segment(self) -> int:
        return self._bar_index + 1

    def update(
        self,
        ts_ns: int,
        open_price: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        taker_buy_volume: float = NAN,
    ) -> tuple[float, ...]:
        if not (
            open_price == open_price and high == high and low == low and close == close and volume == volume
        ):
            raise DataError(f"bar at ts={ts_ns} has a NaN price or volume; clean the data first")
        if self._needs_taker and taker_buy_volume != taker_buy_volume:
            raise DataError(
                f"bar at ts={ts_ns} has no taker buy volume, which this engine was built to use; "
                "build it with available=('ohlcv',) to use the declared fallback instead"
            )
        last = self._last_ts
        if last is not None and ts_ns - last != self.interval_ns:
            if ts_ns <= last:
                raise DataError(f"bar at ts={ts_ns} is not after the previous bar at ts={last}")
            self.reset()
        self._last_ts = ts_ns
        self._bar_index += 1
        index = self._bar_index
        result = self._update(ts_ns, open_price, high, low, close, volume, taker_buy_volume, index)
        if index >= self._set_warmup - 1:
            return result
        return tuple(
            value if index >= warmup - 1 else NAN for value, warmup in zip(result, self._warmups, strict=True)
        )


def stream_features(
    engine: StreamingFeatureEngine,
    ts_ns: np.ndarray,
    open_price: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    taker_buy_volume: np.ndarray | None = None,
) -> np.ndarray:
    """Feed arrays through the engine bar by bar; (n, features) float64, NaN in warm-up (tests, bench)."""
    count = len(ts_ns)
    taker = [NAN] * count if taker_buy_volume is None else taker_buy_volume.tolist()
    update = engine.update
    rows = [
        update(*bar)
        for bar in zip(
            ts_ns.tolist(),
            open_price.tolist(),
            high.tolist(),
            low.tolist(),
            close.tolist(),
            volume.tolist(),
            taker,
            strict=True,
        )
    ]
    return np.asarray(rows, dtype=np.float64).reshape(count, len(engine.names))
