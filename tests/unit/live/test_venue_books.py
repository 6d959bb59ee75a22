"""VenueBooks (qa_engine.live.venue.books): each rule and rejection, the payload shapes against the real
Bybit samples, and the equivalence with the project's backtest on real bars of the sample catalog."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from nautilus_trader.backtest.config import MarginModelConfig
from nautilus_trader.backtest.config import MarginModelFactory
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from qa_engine.backtest.fees import VenueRateFeeModel
from qa_engine.backtest.fees import VenueRateFeeModelConfig
from qa_engine.backtest.funding import FundingSettlementConfig
from qa_engine.backtest.funding import FundingSettlementModule
from qa_engine.backtest.liquidation import LiquidationConfig
from qa_engine.backtest.liquidation import LiquidationModule
from qa_engine.backtest.slippage import BpsSlippageFillModel
from qa_engine.backtest.slippage import BpsSlippageFillModelConfig
from qa_engine.live.venue.books import AccountSpec
from qa_engine.live.venue.books import BarRow
from qa_engine.live.venue.books import InstrumentSpec
from qa_engine.live.venue.books import VenueBooks
from tests.factories import bybit_sample
from tests.pristine import pristine_catalog

SYMBOL = "BTCUSDT"
INSTRUMENT_ID = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")
BAR_TYPE = BarType.from_str("BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL")
SPEC = InstrumentSpec(SYMBOL, Decimal("0.10"), Decimal("0.001"), Decimal("0.001"), Decimal(100), Decimal(5))
ACCOUNT = AccountSpec(
    starting_balance=Decimal(10_000),
    maker_fee_rate=Decimal("0.0002"),
    taker_fee_rate=Decimal("0.00055"),
    slippage_bps=Decimal(1),
    default_leverage=Decimal(10),
    maintenance_margin_rates={SYMBOL: Decimal("0.005")},
)


def bar(close: str, open_: str | None = None, high: str | None = None, low: str | None = None, i: int = 0):
    o = Decimal(open_ or close)
    c = Decimal(close)
    h = Decimal(high) if high else max(o, c)
    lo = Decimal(low) if low else min(o, c)
    end = 1_735_689_900_000 + i * 300_000
    return BarRow(SYMBOL, end - 300_000, end, o, h, lo, c, Decimal(100), Decimal(0))


def books(**account) -> VenueBooks:
    spec = AccountSpec(**{**ACCOUNT.__dict__, **account})
    venue = VenueBooks([SPEC], spec)
    venue.on_bar(bar("100000.00"))
    return venue


def order(side="Buy", qty="0.010", order_type="Market", **extra) -> dict:
    return {"category": "linear", "symbol": SYMBOL, "side": side, "orderType": order_type, "qty": qty} | extra


# --- rules -------------------------------------------------------------------------------------------


def test_market_buy_fills_slippage_above_the_close_rounded_up_with_the_taker_fee():
    venue = books()
    reply = venue.place_order(order(qty="0.100"), 1)
    assert reply.ret_code == 0
    # 100,000 x 1.0001 = 100,010.0; fee 0.1 x 100,010 x 0.00055
    assert venue.snapshot()["fills"] == [
        (SYMBOL, "Buy", Decimal("0.100"), Decimal("100010.00"), Decimal("5.50055"), False)
    ]
    assert venue.snapshot()["balance"] == Decimal("9994.49945")
    assert [e.topic for e in reply.events] == ["execution", "order", "position", "wallet"]


def test_market_sell_rounds_down_to_the_tick():
    venue = VenueBooks([SPEC], ACCOUNT)
    venue.on_bar(bar("93630.10"))
    venue.place_order(order(side="Sell"), 1)
    # 93,630.10 x 0.9999 = 93,620.73699 -> 93,620.70
    assert venue.snapshot()["fills"][0][3] == Decimal("93620.70")


def test_round_trip_books_the_price_pnl_less_both_fees():
    venue = books()
    venue.place_order(order(qty="0.100"), 1)  # at 100,010.00
    venue.on_bar(bar("101000.00", i=1))
    venue.place_order(order(side="Sell", qty="0.100"), 2)  # at 100,989.90
    fees = Decimal("5.50055") + Decimal("5.5544445")
    assert venue.snapshot()["balance"] == Decimal(10_000) + Decimal("97.99") - fees
    assert venue.snapshot()["positions"] == {}


def test_a_flip_closes_then_opens_at_the_fill_price():
    venue = books()
    venue.place_order(order(qty="0.100"), 1)
    venue.place_order(order(side="Sell", qty="0.300"), 2)  # at 99,990.00
    qty, entry = venue.snapshot()["positions"][SYMBOL]
    assert (qty, entry) == (Decimal("-0.200"), Decimal("99990.0"))
    position = venue.positions(SYMBOL)[0]
    assert (position["side"], position["size"]) == ("Sell", "0.200")


def test_limit_rests_then_fills_at_its_price_as_maker():
    venue = books()
    reply = venue.place_order(order(order_type="Limit", price="99500.00", orderLinkId="L1"), 1)
    assert reply.events[0].data["orderStatus"] == "New"
    venue.on_bar(bar("99800.00", high="100050.00", low="99400.00", i=1))
    assert venue.snapshot()["fills"] == [
        (SYMBOL, "Buy", Decimal("0.010"), Decimal("99500.00"), Decimal("0.199"), True)
    ]
    assert venue.order_history()[0]["orderStatus"] == "Filled"


def test_limit_fills_at_its_price_when_the_bar_gaps_through_it():
    venue = books()
    venue.place_order(order(order_type="Limit", price="99500.00"), 1)
    venue.on_bar(bar("99000.00", open_="99100.00", i=1))
    assert venue.snapshot()["fills"][0][3] == Decimal("99500.00")


def test_marketable_limit_fills_at_the_last_price_as_taker_and_post_only_is_cancelled():
    venue = books()
    venue.place_order(order(order_type="Limit", price="100100.00"), 1)
    assert venue.snapshot()["fills"][0][3:] == (Decimal("100000.00"), Decimal("0.55"), False)
    reply = venue.place_order(order(order_type="Limit", price="100100.00", timeInForce="PostOnly"), 2)
    assert reply.events[0].data["orderStatus"] == "Cancelled"
    assert venue.snapshot()["fills_count"] == 1


def test_stop_market_fills_at_the_trigger_inside_the_bar_and_at_the_open_on_a_gap():
    venue = books()
    venue.place_order(order(qty="0.100"), 1)
    stop = {"triggerPrice": "99000.00", "triggerDirection": 2, "reduceOnly": True, "orderLinkId": "SL"}
    reply = venue.place_order(order(side="Sell", qty="0.100", **stop), 2)
    assert reply.events[0].data["orderStatus"] == "Untriggered"
    venue.on_bar(bar("99500.00", high="100000.00", low="98800.00", i=1))
    fill = venue.snapshot()["fills"][-1]
    assert fill[3] == Decimal("99000.00") and fill[5] is False
    other = books()
    other.place_order(order(side="Sell", qty="0.100", triggerPrice="99000.00", triggerDirection="2"), 1)
    other.on_bar(bar("98000.00", open_="98500.00", i=1))
    assert other.snapshot()["fills"][-1][3] == Decimal("98500.00")


def test_stop_statuses_untriggered_triggered_filled():
    venue = books()
    reply = venue.place_order(order(triggerPrice="100500.00", triggerDirection=1), 1)
    events = venue.on_bar(bar("100600.00", i=1))
    statuses = [e.data["orderStatus"] for e in reply.events + events if e.topic == "order"]
    assert statuses == ["Untriggered", "Triggered", "Filled"]


def test_bar_path_goes_high_first_when_the_open_is_nearer_the_high():
    venue = books()
    venue.place_order(order(order_type="Limit", price="99000.00", orderLinkId="buy"), 1)
    venue.place_order(order(side="Sell", order_type="Limit", price="101000.00", orderLinkId="sell"), 1)
    venue.on_bar(bar("100000.00", open_="100000.00", high="101000.00", low="98000.00", i=1))  # high nearer
    assert [f[1] for f in venue.snapshot()["fills"]] == ["Sell", "Buy"]


def test_reduce_only_orders_go_when_the_position_closes():
    venue = books()
    venue.place_order(order(qty="0.100"), 1)
    venue.place_order(
        order(side="Sell", qty="0.100", triggerPrice="99000.00", triggerDirection=2, reduceOnly=True), 1
    )
    venue.place_order(
        order(side="Sell", qty="0.100", order_type="Limit", price="101000.00", reduceOnly=True), 1
    )
    venue.on_bar(bar("101000.00", i=1))  # the take-profit fills
    assert venue.snapshot()["open_orders"] == []
    assert {o["orderStatus"] for o in venue.order_history()} == {"Filled", "Deactivated"}


def test_funding_at_the_bar_that_closes_at_the_funding_time():
    t = 1_735_689_900_000 + 300_000
    venue = VenueBooks([SPEC], ACCOUNT, {SYMBOL: {t: Decimal("0.0001")}})
    venue.on_bar(bar("100000.00"))
    venue.place_order(order(qty="0.100"), 1)
    venue.on_bar(bar("101000.00", i=1))
    assert venue.snapshot()["funding_payments"] == [(SYMBOL, t, Decimal("-1.01"))]  # long pays
    assert venue.positions()[0]["cumRealisedPnl"] == str(Decimal("-1.01") - Decimal("5.50055"))


def test_liquidation_closes_at_the_liquidation_price():
    venue = books(default_leverage=Decimal(100), starting_balance=Decimal(100))
    venue.place_order(order(qty="0.010"), 1)  # 1,000 USDT at 10x the balance
    events = venue.on_bar(bar("95000.00", open_="100000.00", low="90000.00", i=1))
    assert venue.snapshot()["positions"] == {}
    assert any(e.topic == "execution" and e.data["execType"] == "BustTrade" for e in events)
    assert venue.snapshot()["liquidation_fees"] > 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (order(qty="0.0105"), 10001),  # not a multiple of the step
        (order(qty="0.0005"), 10001),  # below min qty
        (order(symbol="DOGEUSDT"), 10001),
        (order(side="buy"), 10001),
        (order(qty="0.001", order_type="Limit", price="1000.00"), 110094),  # 1 USDT < 5 USDT min notional
        (order(order_type="Limit", price="0"), 110003),
        (order(qty="1.100"), 110007),  # 110,000 USDT at 10x on 10,000
        (order(side="Sell", reduceOnly=True), 110017),  # nothing to reduce
        (order(triggerPrice="99000.00", triggerDirection=1), 110092),  # rising, already above
        (order(triggerPrice="101000.00", triggerDirection=2), 110093),
    ],
)
def test_rejections_use_bybit_codes(params, code):
    reply = books().place_order(params, 1)
    assert (reply.ret_code, reply.events) == (code, [])


def test_duplicate_order_link_id_and_unknown_cancel():
    venue = books()
    assert venue.place_order(order(orderLinkId="A"), 1).ret_code == 0
    assert venue.place_order(order(orderLinkId="A"), 2).ret_code == 110072
    assert venue.cancel_order({"symbol": SYMBOL, "orderLinkId": "A"}, 3).ret_code == 110001  # filled
    assert venue.cancel_order({"symbol": SYMBOL, "orderId": "nope"}, 3).ret_code == 110001


def test_amend_cancel_and_cancel_all():
    venue = books()
    placed = venue.place_order(order(order_type="Limit", price="99000.00", orderLinkId="L"), 1)
    assert venue.amend_order({"symbol": SYMBOL, "orderLinkId": "L", "price": "98000.00"}, 2).ret_code == 0
    assert venue.open_orders()[0]["price"] == "98000.00"
    cancelled = venue.cancel_order({"symbol": SYMBOL, "orderId": placed.result["orderId"]}, 3)
    assert cancelled.events[0].data["orderStatus"] == "Cancelled"
    venue.place_order(order(order_type="Limit", price="99000.00"), 4)
    reply = venue.cancel_all({"symbol": SYMBOL}, 5)
    assert len(reply.result["list"]) == 1 and venue.open_orders() == []


def test_set_leverage_and_not_modified():
    venue = books()
    assert venue.set_leverage(SYMBOL, Decimal(10), Decimal(10)).ret_code == 110043
    assert venue.set_leverage(SYMBOL, "5", "5").ret_code == 0
    assert venue.positions(SYMBOL)[0]["leverage"] == "5"


def test_instrument_spec_from_a_real_instruments_info_entry():
    entry = json.loads(bybit_sample("http_get_instruments_linear.json").read_text())["result"]["list"][0]
    spec = InstrumentSpec.from_instruments_info(entry)
    assert spec == InstrumentSpec(
        "BTCUSDT", Decimal("0.5"), Decimal("0.001"), Decimal("0.001"), Decimal(100), Decimal(5)
    )


# --- payload shapes ----------------------------------------------------------------------------------


def _sample_record(name: str) -> dict:
    payload = json.loads(bybit_sample(name).read_text())
    data = payload["data"] if "data" in payload else payload["result"]["list"]
    return data[0]


def _same_shape(record: dict, sample: dict, ignore: set[str] = frozenset()) -> None:
    missing = set(sample) - set(record) - set(ignore)
    assert not missing, f"fields missing: {sorted(missing)}"
    for key, value in sample.items():
        if key in record and value is not None and key not in ignore:
            assert type(record[key]) is type(value), f"{key}: {record[key]!r} vs sample {value!r}"


def test_records_have_every_field_of_the_real_samples_with_the_same_types():
    venue = books()
    venue.place_order(order(order_type="Limit", price="99000.00"), 1)
    reply = venue.place_order(order(qty="0.100"), 2)
    by_topic = {e.topic: e.data for e in reply.events}
    _same_shape(by_topic["execution"], _sample_record("ws_account_execution.json"))
    _same_shape(by_topic["order"], _sample_record("ws_account_order_filled.json"))
    _same_shape(by_topic["position"], _sample_record("ws_account_position.json"))
    _same_shape(by_topic["wallet"], _sample_record("ws_account_wallet.json"))
    _same_shape(venue.open_orders()[0], _sample_record("http_get_orders_realtime.json"), {"blockTradeId"})
    _same_shape(venue.positions()[0], _sample_record("http_get_positions.json"))
    _same_shape(venue.executions()[0], _sample_record("http_get_executions.json"))
    _same_shape(venue.fee_rates()[0], _sample_record("http_get_fee_rate.json"))
    wallet = venue.wallet_balance()["list"][0]
    _same_shape(wallet, _sample_record("http_get_wallet_balance.json"), {"totalPerpUPL"})
    assert by_topic["execution"]["execPrice"] == "100010.00" and by_topic["order"]["qty"] == "0.100"


# --- equivalence with the backtest -------------------------------------------------------------------

# bar index -> commands, on real 5m BTCUSDT bars of 2025-01-01 (funding at 08:00 = bar 95, 16:00 = 191).
# Prices of resting orders are set from the bar's close by `offset_bps` (rounded to the tick).
SCRIPT: dict[int, list[tuple]] = {
    5: [("market", "Buy", "0.010")],
    10: [("market", "Buy", "0.005")],  # adds: a new average
    20: [("market", "Sell", "0.025")],  # flips to short 0.010
    30: [("stop", "Buy", "0.010", 10, True)],  # stop-loss of the short, 10 bp above
    60: [("bracket", "Buy", "0.020", -40, 50)],  # long through the 08:00 funding; the stop-loss fills
    130: [("market", "Sell", "0.030")],  # short through 16:00
    150: [("limit", "Buy", "0.010", -10, False)],  # adds to the short when it dips
}


def _real_bars(count: int = 200):
    catalog = ParquetDataCatalog(str(pristine_catalog()))
    bars = catalog.bars(bar_types=[str(BAR_TYPE)])[:count]
    funding = [
        f
        for f in catalog.query(FundingRateUpdate, identifiers=[INSTRUMENT_ID.value])
        if f.ts_event <= bars[-1].ts_init
    ]
    instrument = catalog.instruments(instrument_ids=[INSTRUMENT_ID.value])[0]
    return bars, funding, instrument


def _price(close: Decimal, offset_bps: int) -> Decimal:
    tick = Decimal("0.10")
    return (close * (1 + Decimal(offset_bps) / 10_000) / tick).to_integral_value() * tick


class ScriptStrategy(Strategy):
    def __init__(self, script: dict[int, list[tuple]]) -> None:
        super().__init__(StrategyConfig(strategy_id="SCRIPT-001"))
        self.script = script
        self.index = -1
        self.fills: list = []

    def on_start(self) -> None:
        self.subscribe_bars(BAR_TYPE)

    def on_bar(self, bar) -> None:
        self.index += 1
        for kind, side, qty, *rest in self.script.get(self.index, []):
            order_side, quantity = OrderSide.BUY if side == "Buy" else OrderSide.SELL, Quantity.from_str(qty)
            close = bar.close.as_decimal()
            if kind == "market":
                order = self.order_factory.market(INSTRUMENT_ID, order_side, quantity)
            elif kind == "bracket":  # as strategies/trinity.py: market entry, stop-loss and take-profit
                bracket = self.order_factory.bracket(
                    INSTRUMENT_ID,
                    order_side,
                    quantity,
                    sl_trigger_price=Price.from_str(str(_price(close, rest[0]))),
                    tp_price=Price.from_str(str(_price(close, rest[1]))),
                )
                self.submit_order_list(bracket)
                continue
            else:
                price = Price.from_str(str(_price(close, rest[0])))
                if kind == "stop":
                    order = self.order_factory.stop_market(
                        INSTRUMENT_ID, order_side, quantity, price, reduce_only=rest[1]
                    )
                else:
                    order = self.order_factory.limit(
                        INSTRUMENT_ID, order_side, quantity, price, reduce_only=rest[1]
                    )
            self.submit_order(order)

    def on_order_filled(self, event) -> None:
        self.fills.append(event)


def _backtest(bars, funding, instrument):
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    funding_module = FundingSettlementModule(FundingSettlementConfig(instrument_ids=[INSTRUMENT_ID.value]))
    liquidation = LiquidationModule(
        LiquidationConfig(
            maintenance_rates={INSTRUMENT_ID.value: "0.005"},
            fee_rates={INSTRUMENT_ID.value: "0.005"},
            taker_fee_rates={INSTRUMENT_ID.value: "0.00055"},
        )
    )
    engine.add_venue(
        venue=Venue("BYBIT"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(10_000, USDT)],
        default_leverage=Decimal(10),
        modules=[funding_module, liquidation],
        fill_model=BpsSlippageFillModel(BpsSlippageFillModelConfig(slippage_bps=1.0)),
        fee_model=VenueRateFeeModel(
            VenueRateFeeModelConfig(maker_fee_rate="0.0002", taker_fee_rate="0.00055")
        ),
        margin_model=MarginModelFactory.create(
            MarginModelConfig(model_type="qa_engine.risk.margin:VenueMarginModel")
        ),
        bar_adaptive_high_low_ordering=True,
    )
    engine.add_instrument(instrument)
    engine.add_data(
        sorted([*funding, *bars], key=lambda d: (d.ts_init, 0 if isinstance(d, FundingRateUpdate) else 1))
    )
    strategy = ScriptStrategy(SCRIPT)
    engine.add_strategy(strategy)
    engine.run()
    balance = engine.portfolio.account(Venue("BYBIT")).balance_total(USDT).as_decimal()
    fills = [
        (
            "Buy" if f.order_side == OrderSide.BUY else "Sell",
            f.last_qty.as_decimal(),
            f.last_px.as_decimal(),
            f.commission.as_decimal(),
        )
        for f in strategy.fills
    ]
    payments = [(p.ts_ns // 1_000_000, p.amount) for p in funding_module.payments]
    engine.dispose()
    return fills, payments, balance


def _venue_books(bars, funding):
    rates = {SYMBOL: {f.ts_event // 1_000_000: Decimal(str(f.rate)) for f in funding}}
    venue = VenueBooks([SPEC], ACCOUNT, rates)
    for index, nautilus_bar in enumerate(bars):
        end_ms = nautilus_bar.ts_init // 1_000_000
        close = nautilus_bar.close.as_decimal()
        row = BarRow(
            SYMBOL,
            end_ms - 300_000,
            end_ms,
            nautilus_bar.open.as_decimal(),
            nautilus_bar.high.as_decimal(),
            nautilus_bar.low.as_decimal(),
            close,
            nautilus_bar.volume.as_decimal(),
            Decimal(0),
        )
        venue.on_bar(row)
        for kind, side, qty, *rest in SCRIPT.get(index, []):
            params = order(side=side, qty=qty)
            if kind == "bracket":  # the node sends the entry, then the two reduce-only children
                exit_side, sl, tp = (
                    ("Sell" if side == "Buy" else "Buy"),
                    _price(close, rest[0]),
                    _price(close, rest[1]),
                )
                direction = 2 if exit_side == "Sell" else 1
                children = [
                    order(
                        side=exit_side,
                        qty=qty,
                        triggerPrice=str(sl),
                        triggerDirection=direction,
                        reduceOnly=True,
                    ),
                    order(side=exit_side, qty=qty, orderType="Limit", price=str(tp), reduceOnly=True),
                ]
                for params in [order(side=side, qty=qty), *children]:
                    assert venue.place_order(params, end_ms).ret_code == 0
                continue
            if kind == "stop":
                params |= {"triggerPrice": str(_price(close, rest[0])), "reduceOnly": rest[1]}
                params |= {"triggerDirection": 1 if side == "Buy" else 2}
            elif kind == "limit":
                params |= {"orderType": "Limit", "price": str(_price(close, rest[0])), "reduceOnly": rest[1]}
            reply = venue.place_order(params, end_ms)
            assert reply.ret_code == 0, (index, reply)
    snapshot = venue.snapshot()
    fills = [(side, qty, price, fee) for _, side, qty, price, fee, _ in snapshot["fills"]]
    payments = [(ts, amount) for _, ts, amount in snapshot["funding_payments"]]
    return fills, payments, snapshot["balance"], snapshot


def test_books_match_the_backtest_fill_for_fill_on_real_bars():
    bars, funding, instrument = _real_bars()
    expected_fills, expected_payments, expected_balance = _backtest(bars, funding, instrument)
    fills, payments, balance, snapshot = _venue_books(bars, funding)

    assert fills == expected_fills
    assert payments == expected_payments
    assert balance == expected_balance  # exact, to USDT's 8 decimals
    # the script exercised what it is meant to: 4 market orders and a bracket entry, the short's stop,
    # the bracket's stop-loss (its take-profit cancelled), the limit (maker); two funding settlements
    assert len(fills) == 8 and [f[5] for f in snapshot["fills"]].count(True) == 1
    assert len(payments) == 2 and snapshot["positions"] == {SYMBOL: (Decimal("-0.020"), Decimal("93283.4"))}
    assert snapshot["open_orders"] == []
