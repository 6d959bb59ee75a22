"""Streaming twin: one engine that updates every feature of a set incrementally, bar by bar.

Design, for speed: the engine is ONE generated function, compiled to machine code with numba. Every
feature and shared intermediate contributes a few lines of code to it (`contexts.StreamContext`
collects them) and keeps its state (ring buffers, running sums, EMA values) in four flat arrays the
engine owns, so a bar costs one call into straight-line compiled arithmetic: no per-feature object,
call or list lookup. (In CPython, the same design cost ~30 us a bar for the default set on the 2-core
machine, and 2-3x that inside a backtest, where the bytecode of 500 lines runs with caches cold
between the bars of Nautilus; compiled it costs a few us: see bench/bench_features.py.)
Intermediates are shared by key: the EMA-26 behind MACD and behind the `ema_26` feature is one line.
Every step is O(1) or O(window): window sums are running sums refreshed exactly every REFRESH_BARS
bars (a correctly rounded fsum), EMAs use the exact recursion of polars' ewm_mean(adjust=False),
windowed numerics (FFD, wavelet, volume profile, OBV slope) run the per-bar forms of the batch
twin's kernels on a contiguous view of a double-length ring buffer (`compiled_kernels`).

The generated module is written to the engine cache (`QA_CACHE_DIR`, default ~/.cache/quantum-alpha;
a file per distinct source, named by its hash) so that numba keeps the machine code next to it: the
first engine of a feature set compiles for a few seconds, every later one, in any process, loads in
a fraction of one. The source is kept on the engine (`engine.source`) for reading; with
`NUMBA_DISABLE_JIT=1` the same function runs as plain Python, to step through it in a debugger.
A gap (bar close times further apart than the interval) restarts every state, so the warm-up
restarts, as in the batch twin, which splits the table at gaps.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from qa_engine.errors import DataError
from qa_engine.features.contexts import NAN
from qa_engine.features.contexts import StreamContext
from qa_engine.features.registry import kind_of
from qa_engine.features.spec import FeatureSet

LITTLE_ENDIAN_F8 = np.dtype("<f8")


@cache
def kernels_stamp() -> str:
    """A first line for every generated module: numba caches an engine's machine code by its file,
    and that code contains the stream kernels it calls, so the file must change when they do."""
    import numba

    from qa_engine.features import compiled_kernels

    digest = hashlib.sha256(Path(compiled_kernels.__file__).read_bytes()).hexdigest()[:16]
    return f"# compiled_kernels.py {digest}, numba {numba.__version__}\n"


def engine_cache_dir() -> Path:
    """Where generated engines and their compiled code live: $QA_CACHE_DIR/feature-engines, default
    ~/.cache/quantum-alpha/feature-engines."""
    root = os.environ.get("QA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "quantum-alpha") / "feature-engines"


def _write_engine_file(name: str, source: str) -> Path:
    """The module file of an engine, written once (its name is its content's hash) into the engine
    cache, or into a per-user temporary folder where that cannot be written."""
    for folder in (engine_cache_dir(), Path(tempfile.gettempdir()) / f"quantum-alpha-{os.getuid()}"):
        path = folder / f"{name}.py"
        if path.exists():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Atomic: a process importing the file meanwhile sees no file or the whole one.
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(source)
            os.replace(partial, path)
            return path
        except OSError:
            continue
    raise OSError(f"cannot write the feature engine {name}.py in {engine_cache_dir()} or a temp folder")


def load_engine_module(source: str) -> ModuleType:
    """Import a generated engine module (compiling it, or loading numba's cached machine code)."""
    name = f"qa_feature_engine_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _write_engine_file(name, source))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: numba's cached code refers to the module by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class StreamingFeatureEngine:
    """Incremental features of one instrument's bars: `update` once per closed bar.

    `update(ts, open, high, low, close, volume[, taker_buy_volume])` returns the feature values of
    the bar in set order, NaN where a feature is still in its warm-up (`advance` + `values_f8`: the
    same values as the little-endian float64 bytes a FeatureVector carries); `warm` says whether
    every feature is past it. Bars must come in time order; a gap (close times more than one
    interval apart) restarts the warm-up.
    """

    def __init__(
        self, feature_set: FeatureSet, interval_ns: int, available: Sequence[str] = ("ohlcv",)
    ) -> None:
        self.feature_set = feature_set.resolve(frozenset(available))
        self.interval_ns = interval_ns
        self.names = self.feature_set.names
        self._warmups = np.asarray([spec.warmup_bars for spec in self.feature_set.specs], dtype=np.int64)
        self._set_warmup = self.feature_set.warmup_bars
        self._needs_taker = any("taker_buy_volume" in spec.inputs for spec in self.feature_set.specs)
        context = StreamContext(kind_of)
        outputs = [context.feature(spec) for spec in self.feature_set.specs]
        self._program = context.compile(outputs)
        self.source = kernels_stamp() + self._program.source
        self._step = load_engine_module(self.source).update
        self._out = np.zeros(len(self.names), dtype=LITTLE_ENDIAN_F8)
        self.reset()

    def reset(self) -> None:
        """Forget every bar: fresh state, warm-up restarts."""
        program = self._program
        self._float_state = program.float_state.copy()
        self._int_state = program.int_state.copy()
        self._float_buffer = program.float_buffer.copy()
        self._int_buffer = program.int_buffer.copy()
        self._bar_index = -1
        self._last_ts: int | None = None

    @property
    def warm(self) -> bool:
        return self._bar_index >= self._set_warmup - 1

    @property
    def bars_in_segment(self) -> int:
        return self._bar_index + 1

    def advance(
        self,
        ts_ns: int,
        open_price: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        taker_buy_volume: float = NAN,
    ) -> None:
        """Take one bar: check it, run the compiled step; its values are then `values_f8` (or `update`'s)."""
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
        self._step(
            self._float_state,
            self._int_state,
            self._float_buffer,
            self._int_buffer,
            int(ts_ns),
            float(open_price),
            float(high),
            float(low),
            float(close),
            float(volume),
            float(taker_buy_volume),
            index,
            self._out,
        )
        if index < self._set_warmup - 1:
            self._out[self._warmups > index + 1] = NAN  # still in its warm-up: NaN

    def update(self, *bar: float) -> tuple[float, ...]:
        """`advance(*bar)`, then the bar's values in set order."""
        self.advance(*bar)
        return tuple(self._out.tolist())

    @property
    def values_f8(self) -> bytes:
        """The last bar's values as little-endian float64 bytes (`signals.pack` of them)."""
        return self._out.tobytes()


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
