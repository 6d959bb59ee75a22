"""A small Nautilus BacktestEngine with this project's venue simulation (funding, margin model, slippage,
liquidation) and a scripted strategy: it sends market orders at given bar indexes. Bars are made from
given prices (close-stamped 5m bars of BTCUSDT-LINEAR.BYBIT, the sample catalog's instrument), so each
test states its prices and expected amounts by hand."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal

import pandas as pd
from nautilus_trader.backtest.config import MarginModelConfig
from nautilus_trader.backtest.config import MarginModelFactory
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar
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

from qa_engine.backtest.funding import FundingSettlementConfig
from qa_engine.backtest.funding import FundingSettlementModule
from qa_engine.backtest.liquidation import LiquidationConfig
from qa_engine.backtest.liquidation import LiquidationModule
from tests.pristine import pristine_catalog

CATALOG = pristine_catalog()
INSTRUMENT_ID = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")
BAR_TYPE = BarType.from_str("BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL")
T0 = pd.Timestamp("2025-01-01 00:05", tz="UTC").value  # close of the first bar
FIVE_MINUTES = 300_000_000_000


def instrument():
    return ParquetDataCatalog(str(CATALOG)).instruments(instrument_ids=[INSTRUMENT_ID.value])[0]


def bars(ohlc: list[tuple[float, float, float, float]], start_ns: int = T0) -> list[Bar]:
    """Bar i closes at start_ns + i x 5 min."""
    out = []
    for index, (o, h, low, c) in enumerate(ohlc):
        ts = start_ns + index * FIVE_MINUTES
        out.append(
            Bar(
                BAR_TYPE,
                Price(o, 2),
                Price(h, 2),
                Price(low, 2),
                Price(c, 2),
                Quantity.from_str("100.000"),
                ts,
                ts,
            )
        )
    return out


def flat(prices: list[float]) -> list[tuple[float, float, float, float]]:
    return [(p, p, p, p) for p in prices]


def funding(rate: str, bar_index: int, start_ns: int = T0) -> FundingRateUpdate:
    """A funding update stamped at the close of bar `bar_index`."""
    ts = start_ns + bar_index * FIVE_MINUTES
    return FundingRateUpdate(INSTRUMENT_ID, Decimal(rate), ts, ts)


class ScriptConfig(StrategyConfig, frozen=True):
    orders: dict[int, str] | None = None  # bar index -> "BUY 0.100" / "SELL 0.100"


class Script(Strategy):
    """Sends the scripted market orders on the close of the given bars; records what it sees."""

    def __init__(self, config: ScriptConfig) -> None:
        super().__init__(config)
        self.index = -1
        self.events: list = []

    def on_start(self) -> None:
        self.subscribe_bars(BAR_TYPE)

    def on_bar(self, bar: Bar) -> None:
        self.index += 1
        order = (self.config.orders or {}).get(self.index)
        if order:
            side, quantity = order.split()
            self.submit_order(
                self.order_factory.market(INSTRUMENT_ID, OrderSide[side], Quantity.from_str(quantity))
            )

    def on_event(self, event) -> None:
        self.events.append(event)


@dataclass
class Run:
    engine: BacktestEngine
    strategy: Script
    funding: FundingSettlementModule | None
    liquidation: LiquidationModule | None
    fills: list = field(default_factory=list)

    def balance(self) -> Decimal:
        return self.engine.portfolio.account(Venue("BYBIT")).balance_total(USDT).as_decimal()


def run(
    data: list,
    orders: dict[int, str],
    *,
    leverage: int = 10,
    balance: int = 10_000,
    with_funding: bool = True,
    maintenance_rate: str | None = None,
    liquidation_fee_rate: str | None = None,
    fill_model=None,
) -> Run:
    """Run the scripted strategy on `data` (bars and funding updates: funding first at equal times,
    as the runner orders them)."""
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    modules = []
    funding_module = liquidation_module = None
    if with_funding:
        funding_module = FundingSettlementModule(
            FundingSettlementConfig(instrument_ids=[INSTRUMENT_ID.value])
        )
        modules.append(funding_module)
    if maintenance_rate is not None:
        liquidation_module = LiquidationModule(
            LiquidationConfig(
                maintenance_rates={INSTRUMENT_ID.value: maintenance_rate},
                fee_rates={INSTRUMENT_ID.value: liquidation_fee_rate or maintenance_rate},
            )
        )
        modules.append(liquidation_module)
    engine.add_venue(
        venue=Venue("BYBIT"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(balance, USDT)],
        default_leverage=Decimal(leverage),
        modules=modules,
        fill_model=fill_model or FillModel(),
        margin_model=MarginModelFactory.create(
            MarginModelConfig(model_type="qa_engine.risk.margin:VenueMarginModel")
        ),
    )
    engine.add_instrument(instrument())
    funding_first = sorted(data, key=lambda d: (d.ts_init, 0 if isinstance(d, FundingRateUpdate) else 1))
    engine.add_data(funding_first)  # a stable sort by ts_init: funding stays first
    strategy = Script(ScriptConfig(orders=orders))
    engine.add_strategy(strategy)
    engine.run()
    result = Run(engine, strategy, funding_module, liquidation_module)
    result.fills = [e for e in strategy.events if type(e).__name__ == "OrderFilled"]
    return result
