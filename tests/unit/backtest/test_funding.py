"""Funding settlement (qa_engine.backtest.funding) against amounts computed by hand.

Prices: flat 100,000 bars, except the bar that closes at the funding time T (bar 3), which closes at
101,000: the settlement price. The position is 0.1 BTC, so |amount| = 0.1 x 101,000 x |rate|."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qa_engine.backtest.funding import funding_amount
from tests.unit.backtest.harness import funding
from tests.unit.backtest.harness import run

PRICES = [(100_000.0,) * 4] * 3 + [(100_000.0, 101_000.0, 100_000.0, 101_000.0)] + [(101_000.0,) * 4] * 3


def _bars():
    from tests.unit.backtest.harness import bars

    return bars(PRICES)


@pytest.mark.parametrize(
    ("side", "rate", "expected"),
    [
        ("BUY", "0.0001", Decimal("-1.01")),  # long pays a positive rate
        ("SELL", "0.0001", Decimal("1.01")),  # short receives it
        ("BUY", "-0.0003", Decimal("3.03")),  # long receives a negative rate
        ("SELL", "-0.0003", Decimal("-3.03")),  # short pays it
    ],
)
def test_long_pays_short_when_positive_and_the_reverse(side, rate, expected):
    result = run([*_bars(), funding(rate, 3)], {0: f"{side} 0.100"})
    without = run(_bars(), {0: f"{side} 0.100"}, with_funding=False)
    payments = result.funding.payments
    assert [p.amount for p in payments] == [expected]
    assert payments[0].price == Decimal("101000.0")
    assert result.balance() - without.balance() == expected  # booked on the account, to the cent and beyond


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        ({2: "BUY 0.100"}, [Decimal("-1.01")]),  # opened on the bar before T: held at T, pays
        ({3: "BUY 0.100"}, []),  # opened in reaction to the bar that closes at T: just after T, pays nothing
        ({0: "BUY 0.100", 3: "SELL 0.100"}, [Decimal("-1.01")]),  # closed exactly at T: held at T, pays
        ({0: "BUY 0.100", 2: "SELL 0.100"}, []),  # closed before T: nothing
        ({0: "BUY 0.100", 3: "SELL 0.200"}, [Decimal("-1.01")]),  # flipped at T: the long held at T pays
    ],
)
def test_the_position_held_at_the_funding_time_pays(orders, expected):
    result = run([*_bars(), funding("0.0001", 3)], orders)
    assert [p.amount for p in result.funding.payments] == expected


def test_the_payment_is_a_funding_adjustment_of_the_position():
    result = run([*_bars(), funding("0.0001", 3)], {0: "BUY 0.100"})
    position = result.engine.cache.positions()[0]
    assert [(str(a.adjustment_type), a.pnl_change.as_decimal()) for a in position.adjustments] == [
        ("2", Decimal("-1.01"))  # PositionAdjustmentType.FUNDING
    ]


def test_several_settlements_add_up():
    data = [*_bars(), funding("0.0001", 1), funding("0.0002", 3), funding("-0.0001", 5)]
    result = run(data, {0: "SELL 0.100"})
    # short 0.1: +0.1 x 100,000 x 0.0001, +0.1 x 101,000 x 0.0002, -0.1 x 101,000 x 0.0001
    assert [p.amount for p in result.funding.payments] == [Decimal("1"), Decimal("2.02"), Decimal("-1.01")]


def test_no_position_no_payment():
    result = run([*_bars(), funding("0.0001", 3)], {})
    assert result.funding.payments == []


def test_funding_amount_formula():
    assert funding_amount(Decimal("0.1"), Decimal(1), Decimal("101000"), Decimal("0.0001")) == Decimal(
        "-1.01"
    )
    assert funding_amount(Decimal("-2"), Decimal(1), Decimal("3000"), Decimal("-0.0005")) == Decimal("-3")
