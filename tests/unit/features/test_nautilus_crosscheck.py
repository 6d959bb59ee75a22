"""Classic indicators against NautilusTrader's built-in ones, on real bars, after the warm-up."""

from __future__ import annotations

import numpy as np
from nautilus_trader.indicators.averages import ExponentialMovingAverage
from nautilus_trader.indicators.averages import MovingAverageType
from nautilus_trader.indicators.averages import SimpleMovingAverage
from nautilus_trader.indicators.momentum import RelativeStrengthIndex
from nautilus_trader.indicators.momentum import Stochastics
from nautilus_trader.indicators.trend import MovingAverageConvergenceDivergence
from nautilus_trader.indicators.volatility import AverageTrueRange
from nautilus_trader.indicators.volatility import BollingerBands
from nautilus_trader.indicators.volume import OnBalanceVolume

from qa_engine.features.families.technical import atr_spec
from qa_engine.features.families.technical import bollinger_spec
from qa_engine.features.families.technical import ema_spec
from qa_engine.features.families.technical import macd_spec
from qa_engine.features.families.technical import obv_spec
from qa_engine.features.families.technical import rsi_spec
from qa_engine.features.families.technical import sma_spec
from qa_engine.features.families.technical import williams_r_spec
from qa_engine.features.spec import FeatureSet
from tests.unit.features.conftest import arrays
from tests.unit.features.conftest import real_bars
from tests.unit.features.conftest import run_batch
from tests.unit.features.conftest import run_streaming

BARS = 3_000
SPECS = (
    sma_spec(20),
    ema_spec(26),
    rsi_spec(14),
    atr_spec("atr"),
    bollinger_spec("upper"),
    bollinger_spec("lower"),
    macd_spec("line"),
    williams_r_spec(14),
    obv_spec("slope"),
)


def nautilus_reference(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sma = SimpleMovingAverage(20)
    ema = ExponentialMovingAverage(26)
    rsi = RelativeStrengthIndex(14, ma_type=MovingAverageType.WILDER)
    atr = AverageTrueRange(14, ma_type=MovingAverageType.WILDER)
    bands = BollingerBands(20, 2.0)
    macd = MovingAverageConvergenceDivergence(12, 26, ma_type=MovingAverageType.EXPONENTIAL)
    stochastics = Stochastics(14, 3)
    obv = OnBalanceVolume(0)  # cumulative (O(n) per update in Nautilus; fine for 3,000 bars)
    out: dict[str, list[float]] = {
        name: [] for name in ("sma", "ema", "rsi", "atr", "upper", "lower", "macd", "williams", "obv")
    }
    previous_close = data["close"][0]
    for high, low, close, volume in zip(
        data["high"], data["low"], data["close"], data["volume"], strict=True
    ):
        sma.update_raw(close)
        ema.update_raw(close)
        rsi.update_raw(close)
        atr.update_raw(high, low, close)
        bands.update_raw(close, close, close)  # typical price = close: TA-Lib BBANDS on close
        macd.update_raw(close)
        stochastics.update_raw(high, low, close)
        obv.update_raw(previous_close, close, volume)  # Nautilus compares close with the bar's open;
        previous_close = close  # fed the previous close instead, it is Granville's (TA-Lib) OBV
        for name, value in (
            ("sma", sma.value),
            ("ema", ema.value),
            ("rsi", 100.0 * rsi.value),
            ("atr", atr.value),
            ("upper", bands.upper),
            ("lower", bands.lower),
            ("macd", macd.value),
            ("williams", stochastics.value_k - 100.0),
            ("obv", obv.value),
        ):
            out[name].append(value)
    return {name: np.asarray(values) for name, values in out.items()}


def test_classic_indicators_match_nautilus_after_warmup() -> None:
    frame = real_bars("BTCUSDT", "5m", BARS)
    feature_set = FeatureSet("classic", 1, SPECS)
    reference = nautilus_reference(arrays(frame))

    for values in (run_batch(frame, feature_set, "5m"), run_streaming(frame, feature_set, "5m")):
        ours = dict(zip(feature_set.names, values.T, strict=True))
        start = 400  # past every warm-up
        np.testing.assert_allclose(ours["sma_20"][start:], reference["sma"][start:], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["ema_26"][start:], reference["ema"][start:], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["rsi_14"][start:], reference["rsi"][start:], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours["atr_14"][start:], reference["atr"][start:], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ours["bb_upper_20"][start:], reference["upper"][start:], rtol=0, atol=1e-7)
        np.testing.assert_allclose(ours["bb_lower_20"][start:], reference["lower"][start:], rtol=0, atol=1e-7)
        np.testing.assert_allclose(ours["macd"][start:], reference["macd"][start:], rtol=0, atol=1e-8)
        np.testing.assert_allclose(
            ours["williams_r_14"][start:], reference["williams"][start:], rtol=0, atol=1e-9
        )
        # OBV slope: least-squares slope of Nautilus' OBV over the last 20 bars / mean volume.
        volume = frame.get_column("volume").to_numpy()
        for row in range(start, BARS, 97):
            window = reference["obv"][row - 19 : row + 1]
            slope = np.polyfit(np.arange(20), window, 1)[0] / volume[row - 19 : row + 1].mean()
            assert abs(ours["obv_slope_20"][row] - slope) <= 1e-9 * max(1.0, abs(slope))


def test_nautilus_seeded_emas_agree_from_the_first_bar() -> None:
    # Same seed (first value) and same recursion: agreement is not only asymptotic.
    frame = real_bars("ETHUSDT", "1m", 300)
    feature_set = FeatureSet("ema", 1, (ema_spec(12),))
    ema = ExponentialMovingAverage(12)
    reference = []
    for close in frame.get_column("close").to_numpy():
        ema.update_raw(close)
        reference.append(ema.value)

    ours = run_streaming(frame, feature_set, "1m")[:, 0]

    valid = ~np.isnan(ours)
    np.testing.assert_allclose(ours[valid], np.asarray(reference)[valid], rtol=1e-13)
