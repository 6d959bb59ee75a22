from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from qa_engine.risk.sizing import quantity_for_notional


def test_rounds_down_to_the_lot_step():
    # 10,000 * 100% / 93,650.1 = 0.10678 -> 0.106 with a 0.001 step
    assert quantity_for_notional(D("10000"), D("93650.1"), D("100"), D("0.001")) == D("0.106")


def test_below_minimum_quantity_returns_zero():
    assert quantity_for_notional(D("50"), D("93650.1"), D("100"), D("0.001"), min_quantity=D("0.001")) == 0


def test_quantity_equal_to_the_minimum_is_kept():
    # 100 * 100% / 100,000 = 0.001 exactly: one lot step, and the venue's minimum is allowed, not refused
    quantity = quantity_for_notional(D("100"), D("100000"), D("100"), D("0.001"), min_quantity=D("0.001"))
    assert quantity == D("0.001")
    # the same 0.001 one lot step under a minimum of 0.002 is refused
    assert quantity_for_notional(D("100"), D("100000"), D("100"), D("0.001"), min_quantity=D("0.002")) == 0


def test_non_positive_equity_returns_zero():
    assert quantity_for_notional(D("-5"), D("100"), D("100"), D("0.01")) == 0


def test_capped_at_max_quantity():
    assert quantity_for_notional(D("1e9"), D("100"), D("100"), D("0.01"), max_quantity=D("1500")) == D("1500")


@given(
    equity=st.decimals(min_value=1, max_value=10**7, places=2),
    price=st.decimals(min_value=D("0.01"), max_value=10**6, places=2),
    pct=st.decimals(min_value=D("0.1"), max_value=1000, places=1),
)
def test_notional_never_exceeds_the_requested_share_of_equity(equity, price, pct):
    quantity = quantity_for_notional(equity, price, pct, D("0.001"))
    assert quantity >= 0
    assert quantity * price <= equity * pct / 100
