"""The venue's initial-margin check (qa_engine.risk.margin), at its exact boundary."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qa_engine.risk.margin import MAINTENANCE_MARGIN_RATES
from qa_engine.risk.margin import check_initial_margin
from qa_engine.risk.margin import maintenance_margin_rate

BTC = "BTCUSDT-LINEAR.BYBIT"


def _check(held: str, order: str, equity: str = "1000", leverage: str = "10", price: str = "100000"):
    return check_initial_margin(
        equity=Decimal(equity),
        leverage=Decimal(leverage),
        exposures={BTC: (Decimal(held), Decimal(price))},
        instrument_id=BTC,
        order_signed_quantity=Decimal(order),
    )


def test_an_order_whose_margin_equals_the_free_margin_passes_and_one_lot_more_is_denied():
    # 1,000 USDT at 10x buys at most 10,000 USDT of notional: 0.1 BTC at 100,000
    exact = _check("0", "0.1")
    assert exact.required == Decimal(1000) and not exact.denied
    over = _check("0", "0.101")
    assert over.denied
    assert over.reason("USDT") == (
        "110007 insufficient available balance: the order needs 1,010.00 USDT initial margin at 10x, "
        "free margin is 1,000.00 USDT"
    )


def test_margin_in_use_counts_against_the_next_order():
    assert not _check("0.05", "0.05").denied
    assert _check("0.05", "0.051").denied
    assert _check("0.05", "0.051").free == Decimal(500)


def test_orders_that_do_not_add_exposure_always_pass():
    assert _check("0.5", "-0.5", equity="10") is None  # a close, even when equity is short
    assert _check("0.5", "-0.2", equity="10") is None  # a reduce
    assert _check("0.1", "-0.2") is None  # a flip to the same size


def test_a_flip_to_a_larger_size_is_checked_on_the_new_side():
    assert _check("0.1", "-0.2", equity="1000") is None
    assert _check("0.1", "-0.25", equity="1000").denied  # short 0.15 needs 1,500


def test_other_instruments_margin_is_in_use():
    check = check_initial_margin(
        equity=Decimal(1000),
        leverage=Decimal(10),
        exposures={
            BTC: (Decimal(0), Decimal(100_000)),
            "ETHUSDT-LINEAR.BYBIT": (Decimal(-2), Decimal(2_500)),
        },
        instrument_id=BTC,
        order_signed_quantity=Decimal("0.05"),
    )
    assert check.in_use == Decimal(500) and check.required == Decimal(1000) and not check.denied


@pytest.mark.parametrize(("instrument_id", "rate"), [(BTC, "0.005"), ("BTCUSDT-PERP.BINANCE", "0.004")])
def test_maintenance_rates_are_the_venues_first_tier(instrument_id, rate):
    assert maintenance_margin_rate(instrument_id) == (Decimal(rate), "venue risk-limit tier 1")
    assert MAINTENANCE_MARGIN_RATES[instrument_id] == Decimal(rate)


def test_an_override_and_the_default_are_named():
    assert maintenance_margin_rate(BTC, Decimal("0.01")) == (Decimal("0.01"), "run config")
    assert maintenance_margin_rate("SOLUSDT-LINEAR.BYBIT")[1].startswith("default")
