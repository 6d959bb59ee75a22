"""Liquidation (qa_engine.backtest.liquidation) on the real crash of 2025-10-10, checked by hand.

Bars: Bybit BTCUSDT 5m from data/klines, 2025-10-10 00:00 -> 2025-10-11 06:00 (BTC fell from 121,650 to
a low of 101,045.9 at 21:20, -17 %). A long opened on the first bar's close at 10x is liquidated where
equity = maintenance margin (0.5 % of notional); the same long at 5x (liquidation ~-19 %) and at 1x
survives."""

from __future__ import annotations

from decimal import ROUND_FLOOR
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from qa_engine.backtest.liquidation import liquidation_price
from tests.unit.backtest.harness import bars
from tests.unit.backtest.harness import run

KLINES = Path(__file__).resolve().parents[3] / "data" / "klines" / "bybit_linear_BTCUSDT_5m.parquet"
TAKER = Decimal("0.00055")
MMR = Decimal("0.005")
TICK = Decimal("0.1")


@pytest.fixture(scope="module")
def crash():
    frame = pd.read_parquet(KLINES)
    frame = frame[(frame.ts_open >= "2025-10-10") & (frame.ts_open < "2025-10-11 06:00")]
    first_close = (frame.ts_open.iloc[0] + pd.Timedelta(minutes=5)).value
    rows = list(frame[["open", "high", "low", "close"]].itertuples(index=False, name=None))
    return rows, bars(rows, start_ns=first_close)


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001"))  # USDT amounts on the account: 8 decimals


def test_a_10x_long_is_liquidated_at_the_price_computed_by_hand(crash):
    rows, data = crash
    quantity = Decimal("0.800")  # 0.8 x 121,650.1 = 97,320 USDT: 9.7x a 10,000 USDT account
    result = run(data, {0: f"BUY {quantity}"}, leverage=10, with_funding=False, maintenance_rate=str(MMR))

    entry = Decimal(str(rows[0][3]))
    balance = Decimal(10_000) - _money(quantity * entry * TAKER)
    expected_price = (quantity * entry - balance) / (quantity * (1 - MMR))
    bar_index = next(i for i, row in enumerate(rows) if i > 0 and Decimal(str(row[2])) <= expected_price)
    fill = min(expected_price, Decimal(str(rows[bar_index][0])))
    fill = (fill / TICK).to_integral_value(rounding=ROUND_FLOOR) * TICK
    close_fee = _money(quantity * fill * TAKER)
    left = balance + quantity * (fill - entry) - close_fee
    liquidation_fee = min(_money(MMR * quantity * fill), left)

    [record] = result.liquidation.liquidations
    assert abs(record.liquidation_price - expected_price) < Decimal("1e-8")  # 28-digit Decimal context
    assert record.fill_price == fill
    assert record.ts_ns == data[bar_index].ts_init
    assert record.liquidation_fee == liquidation_fee
    assert result.balance() == left - liquidation_fee
    # the strategy saw an ordinary fill, and is flat
    assert result.fills[-1].last_px.as_decimal() == fill
    assert result.engine.cache.positions_open() == []
    print(
        f"\n10x long {quantity} @ {entry}: liquidation price by hand {expected_price:.2f}, engine "
        f"{record.liquidation_price:.2f}, filled {record.fill_price} at "
        f"{pd.Timestamp(record.ts_ns, tz='UTC'):%Y-%m-%d %H:%M}; balance left {result.balance()}"
    )


@pytest.mark.parametrize(("quantity", "leverage"), [("0.400", 5), ("0.080", 1)])
def test_the_same_long_at_5x_or_1x_survives_the_crash(crash, quantity, leverage):
    _, data = crash
    result = run(
        data, {0: f"BUY {quantity}"}, leverage=leverage, with_funding=False, maintenance_rate=str(MMR)
    )
    assert result.liquidation.liquidations == []
    assert len(result.engine.cache.positions_open()) == 1


def test_a_short_is_liquidated_when_the_price_rises_to_its_liquidation_price():
    # flat 100,000, then a bar whose high reaches 111,000: a 9x short of 1 BTC on 11,000 USDT, whose
    # liquidation price is (10,945 + 100,000) / 1.005 = 110,393.03
    data = bars([(100_000.0,) * 4, (100_000.0,) * 4, (100_000.0, 111_000.0, 100_000.0, 100_000.0)])
    result = run(
        data, {0: "SELL 1.000"}, leverage=10, balance=11_000, with_funding=False, maintenance_rate="0.005"
    )
    balance = Decimal(11_000) - Decimal(55)  # taker fee of the entry
    expected = (balance + Decimal(100_000)) / Decimal("1.005")
    [record] = result.liquidation.liquidations
    assert abs(record.liquidation_price - expected) < Decimal("1e-8")
    assert record.fill_price == (expected / TICK).to_integral_value(rounding="ROUND_CEILING") * TICK


def test_liquidation_price_formula():
    # long 1 @ 100,000 with 10,000: equity 10,000 + (p - 100,000) = 0.005 p -> p = 90,000 / 0.995
    assert liquidation_price(Decimal(1), Decimal(100_000), Decimal(10_000), MMR) == Decimal(90_000) / Decimal(
        "0.995"
    )
    assert liquidation_price(Decimal(1), Decimal(100_000), Decimal(200_000), MMR) < 0  # never
