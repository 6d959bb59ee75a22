"""A real Nautilus TradingNode (the project's Bybit client factories, Nautilus' Rust Bybit adapter)
trading against the loopback venue in lockstep: bars arrive stamped at the catalog close, orders sent
on a bar fill at that bar's close, and the node's fills match the venue's books."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy
from pydantic import SecretStr

from adapters.bybit.factories import live_clients
from qa_engine.live.clients import Credentials
from qa_engine.live.clients import LiveClientSpec
from tests.unit.live.venue_harness import API_KEY
from tests.unit.live.venue_harness import API_SECRET
from tests.unit.live.venue_harness import INSTRUMENT_ID
from tests.unit.live.venue_harness import sample_data
from tests.unit.live.venue_harness import venue_thread

BAR_TYPE = f"{INSTRUMENT_ID}-5-MINUTE-LAST-EXTERNAL"
BUY_ON_BAR, SELL_ON_BAR = 2, 4


class RoundTripConfig(StrategyConfig, frozen=True):
    bar_type: str = BAR_TYPE


class RoundTrip(Strategy):
    """Buys 0.001 at market on bar 2, sells it on bar 4; remembers every bar."""

    def __init__(self, config: RoundTripConfig) -> None:
        super().__init__(config)
        self.bars: list[Bar] = []

    def on_start(self) -> None:
        self.subscribe_bars(BarType.from_str(self.config.bar_type))

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)
        if len(self.bars) in (BUY_ON_BAR, SELL_ON_BAR):
            side = OrderSide.BUY if len(self.bars) == BUY_ON_BAR else OrderSide.SELL
            order = self.order_factory.market(
                InstrumentId.from_str(INSTRUMENT_ID), side, Quantity.from_str("0.001")
            )
            self.submit_order(order)


def _node(venue, loop: asyncio.AbstractEventLoop) -> tuple[TradingNode, RoundTrip]:
    spec = LiveClientSpec(
        environment="mainnet",
        instrument_ids=(INSTRUMENT_ID,),
        endpoints={
            "http": venue.http_url,
            "ws_public": venue.ws_public_url,
            "ws_private": venue.ws_private_url,
            "ws_trade": venue.ws_trade_url,
        },
        credentials=Credentials(SecretStr(API_KEY), SecretStr(API_SECRET)),
    )
    clients = live_clients(spec)
    config = TradingNodeConfig(
        trader_id="TESTER-001",
        logging=LoggingConfig(log_level="WARNING"),
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        data_clients={clients.name: clients.data_config},
        exec_clients={clients.name: clients.exec_config},
        timeout_connection=20.0,
        timeout_reconciliation=10.0,
        timeout_portfolio=5.0,
        timeout_disconnection=3.0,
        timeout_post_stop=1.0,
    )
    node = TradingNode(config=config, loop=loop)
    strategy = RoundTrip(RoundTripConfig())
    node.trader.add_strategy(strategy)
    node.add_data_client_factory(clients.name, clients.data_factory)
    node.add_exec_client_factory(clients.name, clients.exec_factory)
    node.build()
    return node, strategy


@pytest.mark.timeout(90)
def test_venue_loopback_node_round_trip_fills_at_the_signal_bar_closes() -> None:
    data = sample_data(bars=6)
    rows = data.bars["BTCUSDT"]
    with venue_thread(data, speed="lockstep", quiet_ms=300, start_on="subscribe") as venue:
        loop = asyncio.new_event_loop()
        node, strategy = _node(venue, loop)

        async def scenario() -> None:
            running = asyncio.ensure_future(node.run_async())
            deadline = asyncio.get_running_loop().time() + 60
            while not (venue.done.is_set() and len(strategy.bars) == len(rows)):
                assert asyncio.get_running_loop().time() < deadline, "the node did not see every bar"
                assert not running.done() or running.exception() is None
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # the last fills reach the node
            await node.stop_async()
            await asyncio.wait_for(running, 10)

        try:
            loop.run_until_complete(scenario())
            fills_at_node = [
                (OrderSide(fill.order_side).name, Decimal(str(fill.last_px)))
                for order in node.cache.orders()
                for fill in order.events
                if type(fill).__name__ == "OrderFilled"
            ]
        finally:
            node.kernel.cancel_all_tasks()  # as run_live_node does: the actor executor's worker task
            node.dispose()
            loop.close()
        state = venue.state()
        samples = venue.latencies_ms()

    assert [bar.ts_event for bar in strategy.bars] == [row.end_ms * 1_000_000 for row in rows]
    closes = [rows[BUY_ON_BAR - 1].close, rows[SELL_ON_BAR - 1].close]
    assert [fill[3] for fill in state["books"]["fills"]] == closes
    assert fills_at_node == [("BUY", closes[0]), ("SELL", closes[1])]
    placed = [s for s in samples if s.op == "place_order"]
    assert [s.bar_end_ms for s in placed] == [rows[BUY_ON_BAR - 1].end_ms, rows[SELL_ON_BAR - 1].end_ms]
    assert state["books"]["positions"] == {}
