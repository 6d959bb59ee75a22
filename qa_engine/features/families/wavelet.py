"""Causal wavelet denoising: each bar's value from its trailing window only.

For bar t, the window of the last W closes is denoised (pywavelets db4, `level` levels, soft
threshold at the universal threshold sigma sqrt(2 ln W), sigma from the median absolute finest
detail) and only the LAST sample of the reconstruction is kept. The founding code denoised the
whole series at once, so every value carried information from later bars. Both twins call the
matrix form in `qa_engine.features.kernels` (equal to the pywt call chain, see its tests); it is
O(W) per bar.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from qa_engine.features.contexts import BAR_INDEX
from qa_engine.features.contexts import CLOSE
from qa_engine.features.contexts import BatchContext
from qa_engine.features.contexts import StreamContext
from qa_engine.features.families.common import FeatureKind
from qa_engine.features.families.common import choice
from qa_engine.features.families.common import make_spec
from qa_engine.features.families.common import positive_int
from qa_engine.features.kernels import wavelet_denoise_last_batch
from qa_engine.features.kernels import wavelet_operator
from qa_engine.features.spec import FeatureSpec

OUTPUTS = ("level", "deviation")
CHUNK_ROWS = 2_048  # rows per vectorised block (measured best on the 2-core machine)


def wavelet_spec(
    output: str, window_bars: int = 64, wavelet: str = "db4", level: int = 3, mode: str = "symmetric"
):
    what = "denoised close" if output == "level" else "close / denoised close - 1"
    return make_spec(
        f"wavelet_close_{window_bars}" if output == "level" else f"wavelet_deviation_{window_bars}",
        "wavelet",
        warmup_bars=window_bars,
        description=(
            f"{what}: last sample of the {wavelet} level-{level} soft-threshold denoising of the "
            f"trailing {window_bars} closes"
        ),
        level=level,
        mode=mode,
        output=output,
        wavelet=wavelet,
        window_bars=window_bars,
    )


def _operator(spec: FeatureSpec):
    window = positive_int(spec.name, "window_bars", spec.param("window_bars"))
    level = positive_int(spec.name, "level", spec.param("level"))
    return wavelet_operator(window, str(spec.param("wavelet")), level, str(spec.param("mode")))


def _denoised_batch(context: BatchContext, spec: FeatureSpec) -> np.ndarray:
    operator = _operator(spec)

    def build() -> np.ndarray:
        close = context.array("close")
        window = operator.window_bars
        out = np.full(len(close), np.nan)
        if len(close) < window:
            return out
        windows = sliding_window_view(close, window)
        # One BLAS thread: the batch twin already runs this kind in a worker thread beside polars and
        # the other numpy kinds, and a multi-threaded OpenBLAS on these (2048, W) products spent
        # ~0.7 s more CPU on 1M bars for no wall-clock gain (bench/bench_features.py). OpenBLAS splits
        # a product by output rows / columns, never along the summed axis, so values are the same.
        with threadpool_limits(limits=1, user_api="blas"):
            for start in range(0, len(windows), CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, len(windows))
                block = windows[start:stop]
                if len(block) < CHUNK_ROWS:
                    # BLAS picks its kernel by matrix shape: a short last block would round a row's
                    # value differently from the same row inside a full block (1 ulp), so a value
                    # could change when later bars arrive. Padding keeps every product the same shape.
                    block = np.concatenate([block, np.repeat(block[-1:], CHUNK_ROWS - len(block), axis=0)])
                out[start + window - 1 : stop + window - 1] = wavelet_denoise_last_batch(block, operator)[
                    : stop - start
                ]
        return out

    key = ("wavelet", operator.window_bars, spec.param("wavelet"), spec.param("level"), spec.param("mode"))
    return context.memo(key, build)


def wavelet_batch(context: BatchContext, spec: FeatureSpec) -> np.ndarray:
    output = choice(spec.name, "output", spec.param("output"), OUTPUTS)
    denoised = _denoised_batch(context, spec)
    if output == "level":
        return denoised
    return context.array("close") / denoised - 1.0


def wavelet_stream(context: StreamContext, spec: FeatureSpec) -> str:
    output = choice(spec.name, "output", spec.param("output"), OUTPUTS)
    operator = _operator(spec)
    window = operator.window_bars

    def build() -> str:
        view = context.window_array(CLOSE, "close", window)
        analysis = context.constant("wavelet_analysis_columns", operator.analysis.T)
        synthesis = context.constant("wavelet_synthesis", operator.synthesis)
        detail = context.constant("wavelet_detail_synthesis", operator.detail_synthesis)
        factor = context.constant("wavelet_threshold_factor", operator.threshold_factor)
        finest = operator.finest_count
        call = f"wavelet_denoise_last({view}, {analysis}, {synthesis}, {detail}, {finest}, {factor})"
        return context.temporary("wavelet", f"{call} if {BAR_INDEX} >= {window - 1} else nan")

    key = ("wavelet", window, spec.param("wavelet"), spec.param("level"), spec.param("mode"))
    denoised = context.memo(key, build)
    if output == "level":
        return denoised
    return context.temporary("wavelet_deviation", f"{CLOSE} / {denoised} - 1.0")


KINDS = (
    FeatureKind(
        "wavelet", wavelet_batch, wavelet_stream, "causal wavelet denoising of close", engine="numpy"
    ),
)
