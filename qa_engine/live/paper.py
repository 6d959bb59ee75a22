"""Paper execution: Nautilus' sandbox on live data, with the backtest's venue rules.

Nautilus 1.231's `SandboxExecutionClient` builds its `SimulatedExchange` with a plain `FillModel()`,
`MakerTakerFeeModel()` and no modules, whatever its config says. `PaperExecutionClient` replaces that
exchange with one built from the run's own `BacktestVenueConfig` (qa_engine.config.build.build_venue_configs):
the same slippage fill model, fee model, margin model and liquidation module as a backtest. Funding: live
`FundingRateUpdate`s (Bybit's ticker: the current rate and the next funding time) are kept as the rate due
at `next_funding_ns`; the backtest's settlement code then settles it at the bar closing at that time.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.execution import SandboxExecutionClient
from nautilus_trader.backtest.config import BacktestVenueConfig
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.backtest.execution_client import BacktestExecClient
from nautilus_trader.backtest.node import get_fee_model
from nautilus_trader.backtest.node import get_fill_model
from nautilus_trader.backtest.node import get_margin_model
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.component import MessageBus
from nautilus_trader.common.config import ActorFactory
from nautilus_trader.config import ActorConfig
from nautilus_trader.live.factories import LiveExecClientFactory
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.enums import account_type_from_str
from nautilus_trader.model.enums import oms_type_from_str
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money
from nautilus_trader.portfolio.base import PortfolioFacade

from qa_engine.backtest.funding import FundingSettlementConfig
from qa_engine.backtest.funding import FundingSettlementModule


class PaperExecClientConfig(SandboxExecutionClientConfig, frozen=True):
    """The sandbox config plus the run's simulated venue (the backtest's own venue config)."""

    venue_config: BacktestVenueConfig | None = None
    funding_instrument_ids: list[str] | None = None


class LiveFundingSettlementModule(FundingSettlementModule):
    """The backtest's funding settlement, fed by live rate updates: each update is the rate due at its
    `next_funding_ns`; a newer update for the same funding time replaces the older one."""

    def _on_funding_rate(self, update) -> None:
        instrument_id = update.instrument_id.value
        if instrument_id not in self._instrument_ids or not update.next_funding_ns:
            return
        due = FundingRateUpdate(
            instrument_id=update.instrument_id,
            rate=update.rate,
            next_funding_ns=update.next_funding_ns,
            ts_event=update.next_funding_ns,
            ts_init=update.next_funding_ns,
        )
        pending = [u for u in self._pending.get(instrument_id, []) if u.ts_event != due.ts_event]
        self._pending[instrument_id] = [*pending, due]


class FundingFeedConfig(ActorConfig, frozen=True):
    instrument_ids: list[str]


class FundingFeedActor(Actor):
    """Subscribes the paper node to funding rates (Bybit: the ticker stream), which nothing else asks for."""

    def on_start(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.subscribe_funding_rates(InstrumentId.from_str(instrument_id))


class PaperExecutionClient(SandboxExecutionClient):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        portfolio: PortfolioFacade,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        config: PaperExecClientConfig,
    ) -> None:
        super().__init__(
            loop=loop, portfolio=portfolio, msgbus=msgbus, cache=cache, clock=clock, config=config
        )
        venue_config = config.venue_config
        if venue_config is None:
            return
        modules = [ActorFactory.create(module) for module in (venue_config.modules or [])]
        modules = [m for m in modules if not isinstance(m, FundingSettlementModule)]
        if config.funding_instrument_ids:
            modules.append(
                LiveFundingSettlementModule(
                    FundingSettlementConfig(instrument_ids=config.funding_instrument_ids)
                )
            )
        self.exchange = SimulatedExchange(
            venue=self.venue,
            oms_type=oms_type_from_str(config.oms_type),
            account_type=account_type_from_str(config.account_type),
            starting_balances=[Money.from_str(b) for b in config.starting_balances],
            base_currency=Currency.from_str(config.base_currency) if config.base_currency else None,
            default_leverage=Decimal(str(venue_config.default_leverage)),
            leverages={},
            modules=modules,
            portfolio=portfolio,
            msgbus=self._msgbus,
            cache=cache,
            clock=self.test_clock,
            fill_model=get_fill_model(venue_config),
            fee_model=get_fee_model(venue_config),
            margin_model=get_margin_model(venue_config),
            bar_execution=True,
            bar_adaptive_high_low_ordering=venue_config.bar_adaptive_high_low_ordering,
            trade_execution=True,
            use_message_queue=False,  # real time: no internal queue (as the sandbox does)
        )
        self._client = BacktestExecClient(
            exchange=self.exchange, msgbus=msgbus, cache=cache, clock=self.test_clock
        )
        self.exchange.register_client(self._client)
        self.exchange.initialize_account()

    def connect(self) -> None:
        super().connect()
        # 1.231's sandbox listens on `data.*.<venue>.*`, which bar topics (`data.bars.<bar type>`) never
        # match: without this the paper venue sees no bar and rejects every order ("no market").
        self._msgbus.subscribe(f"data.bars.*.{self.venue}-*", handler=self.on_data)

    def on_data(self, data) -> None:
        if isinstance(data, Instrument) and self.exchange.get_matching_engine(data.id) is None:
            self.exchange.add_instrument(data)  # an instrument that arrived after connect()
            return
        super().on_data(data)


class SandboxLiveExecClientFactory(LiveExecClientFactory):
    """The paper client's factory. Named after Nautilus' own sandbox factory on purpose: 1.231's
    TradingNodeBuilder passes the portfolio a sandbox needs only to a factory whose class is called
    `SandboxLiveExecClientFactory` (live/node_builder.py checks `factory.__name__`)."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: PaperExecClientConfig,
        portfolio: PortfolioFacade,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> PaperExecutionClient:
        return PaperExecutionClient(
            loop=loop, portfolio=portfolio, msgbus=msgbus, cache=cache, clock=clock, config=config
        )


PaperExecClientFactory = SandboxLiveExecClientFactory  # the project's name for it
