"""Run-config models: one TOML file describes one run, validated once at the boundary.

The strategy and actor sections are the same objects in backtest and live configs; that is what
makes a backtest and a live run of the same config behave identically. build.py translates these
models into Nautilus configs.
"""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from typing import ClassVar
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

Interval = Literal["1m", "5m", "15m", "1h", "4h", "1d"]

# Nautilus bar specification of each kline interval.
BAR_SPEC_OF_INTERVAL: dict[str, str] = {
    "1m": "1-MINUTE-LAST",
    "5m": "5-MINUTE-LAST",
    "15m": "15-MINUTE-LAST",
    "1h": "1-HOUR-LAST",
    "4h": "4-HOUR-LAST",
    "1d": "1-DAY-LAST",
}

MAX_LEVERAGE = 10.0  # risk policy (REQUIREMENTS.md): never more than 10x


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VenueConfig(_Model):
    """A simulated venue and the one account held there."""

    name: str = Field(description="Nautilus venue name, e.g. BYBIT or BINANCE", pattern=r"^[A-Z][A-Z0-9_]*$")
    oms_type: Literal["NETTING", "HEDGING"] = Field("NETTING", description="order management system")
    account_type: Literal["MARGIN", "CASH"] = Field("MARGIN", description="MARGIN for perpetuals")
    starting_balance: float = Field(10_000.0, gt=0, description="starting balance in `currency`")
    currency: str = Field("USDT", description="account (settlement) currency", pattern=r"^[A-Z0-9]{2,10}$")
    leverage: float = Field(3.0, gt=0, le=MAX_LEVERAGE, description="default leverage, at most 10x")
    fee_model: Literal["maker_taker", "none"] = Field(
        "maker_taker",
        description="maker_taker: maker/taker rates (the instruments' own unless fee_tier or "
        "maker_fee_rate/taker_fee_rate say otherwise); none: no fees",
    )
    # The instruments' own rates are the venue's published base rates (Bybit USDT perpetuals 0.02 % /
    # 0.055 %). An account with another tier sets it here; the report prints the rates used.
    fee_tier: str | None = Field(
        None,
        description="the account's named fee tier at this venue (qa_engine.backtest.fees.FEE_TIERS: "
        "BYBIT non-vip; BINANCE vip0..vip9) instead of the instruments' rates",
    )
    maker_fee_rate: Decimal | None = Field(
        None, ge=Decimal("-0.001"), le=Decimal("0.01"), description="explicit maker rate (0.0002 = 0.02 %)"
    )
    taker_fee_rate: Decimal | None = Field(
        None, ge=Decimal("-0.001"), le=Decimal("0.01"), description="explicit taker rate (0.00055 = 0.055 %)"
    )
    # With bar data the matching engine only sees a bar's close: an order that arrives any time after
    # a bar closed (latency > 0) waits for the NEXT bar and fills at that bar's close, five minutes
    # late on 5m bars. Latency 0 fills at the signal bar's close, which on 24/7 perpetual data equals
    # the next bar's open. Nautilus' own default (1.231, LatencyModelConfig) is 1 s, so it is always set.
    latency_ms: float = Field(
        0.0, ge=0, description="order latency in ms; with bar data, > 0 delays fills to the next bar's close"
    )
    slippage_probability: float = Field(
        0.0, ge=0, le=1, description="probability that a limit-less order slips one more tick (Nautilus)"
    )
    # Market orders cross the book some time after the bar close they react to, and a bar's close is a
    # last-trade price, not the ask a buy pays: 1 bp is a modest allowance on BTC/ETH perpetuals (their
    # quoted spread is ~0.01-0.1 bp, but a 5m close is seconds stale by the time an order arrives).
    slippage_bps: float = Field(
        1.0, ge=0, le=100, description="market orders fill this many basis points worse than the bar price"
    )
    simulate_funding: bool = Field(
        True, description="settle perpetual funding from the catalog's funding rates at their times"
    )
    liquidation: bool = Field(
        True, description="liquidate a position when equity falls to its maintenance margin (cross margin)"
    )
    maintenance_margin_rate: Decimal | None = Field(
        None,
        gt=0,
        lt=Decimal("0.5"),
        description="maintenance-margin rate of every instrument here (default: the venue's risk-limit "
        "tier 1, qa_engine.risk.margin.MAINTENANCE_MARGIN_RATES)",
    )
    liquidation_fee_rate: Decimal | None = Field(
        None,
        ge=0,
        lt=Decimal("0.5"),
        description="fee on the notional of a liquidated position (default: its maintenance-margin rate, "
        "i.e. the maintenance margin left goes to the insurance fund)",
    )
    fill_seed: int = Field(42, description="seed of the fill model's random draws")
    bar_adaptive_high_low_ordering: bool = Field(
        True, description="order a bar's high/low by proximity to the open when simulating fills"
    )

    @model_validator(mode="after")
    def _check_fees(self) -> VenueConfig:
        explicit = (self.maker_fee_rate is not None, self.taker_fee_rate is not None)
        if any(explicit) and not all(explicit):
            raise ValueError("set both maker_fee_rate and taker_fee_rate, or neither")
        if all(explicit) and self.fee_tier is not None:
            raise ValueError("set either fee_tier or maker_fee_rate/taker_fee_rate, not both")
        if self.fee_model == "none" and (self.fee_tier is not None or all(explicit)):
            raise ValueError(
                "fee_model 'none' charges no fees: remove fee_tier / maker_fee_rate / taker_fee_rate"
            )
        if self.fee_tier is not None:
            from qa_engine.backtest.fees import tier_rates

            tier_rates(self.name, self.fee_tier)  # ValueError naming the known tiers
        return self

    def configured_fee_rates(self) -> tuple[Decimal, Decimal, str] | None:
        """(maker, taker, source) when the config sets the rates, None when the instruments' apply."""
        if self.fee_tier is not None:
            from qa_engine.backtest.fees import tier_rates

            maker, taker = tier_rates(self.name, self.fee_tier)
            return maker, taker, f"fee tier {self.fee_tier}"
        if self.maker_fee_rate is not None and self.taker_fee_rate is not None:
            return self.maker_fee_rate, self.taker_fee_rate, "run config"
        return None


class BarsConfig(_Model):
    """One bar series to load from the catalog."""

    instrument_id: str = Field(
        description="e.g. BTCUSDT-LINEAR.BYBIT", pattern=r"^[A-Za-z0-9\-_/]+\.[A-Z0-9_]+$"
    )
    interval: Interval = Field(description="kline interval")

    @property
    def bar_type(self) -> str:
        return f"{self.instrument_id}-{BAR_SPEC_OF_INTERVAL[self.interval]}-EXTERNAL"

    @property
    def venue(self) -> str:
        return self.instrument_id.rsplit(".", 1)[1]


SignalType = Literal["Forecast", "Regime", "FeatureVector"]


class SignalsConfig(_Model):
    """Signal records to replay from the catalog (written by `qa signals build`) instead of running
    the model actors: the data engine delivers them to the subscribers of
    DataType(<type>, metadata={"instrument_id": ...}) as if the actors had published them."""

    type: SignalType = Field(description="record class in qa_engine.signals")
    instrument_id: str = Field(
        description="e.g. BTCUSDT-LINEAR.BYBIT", pattern=r"^[A-Za-z0-9\-_/]+\.[A-Z0-9_]+$"
    )
    model_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="Forecast / Regime: whose records (default: the only model the catalog holds)",
    )
    feature_set_hash: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="FeatureVector: whose records (default: the only feature set the catalog holds)",
    )

    @model_validator(mode="after")
    def _check(self) -> SignalsConfig:
        if self.type == "FeatureVector" and self.model_id is not None:
            raise ValueError("FeatureVector records are chosen by feature_set_hash, not model_id")
        if self.type != "FeatureVector" and self.feature_set_hash is not None:
            raise ValueError(f"{self.type} records are chosen by model_id, not feature_set_hash")
        return self

    @property
    def key(self) -> str | None:
        return self.feature_set_hash if self.type == "FeatureVector" else self.model_id


class DataConfig(_Model):
    # A local folder stays a Path (everything local works as before); an object-store URI stays a str
    # (`s3://bucket/prefix`; credentials and endpoint from the environment only: qa_engine.data.location).
    catalog: Path | str = Field(
        Path("catalog"),
        description="ParquetDataCatalog root: a folder (relative to the cwd), file:///path or "
        "s3://bucket/prefix (credentials from AWS_* environment variables)",
    )
    bars: list[BarsConfig] = Field(min_length=1, description="bar series replayed in the backtest")
    start: datetime = Field(description="first bar close time included (UTC)")
    end: datetime = Field(description="last bar close time included (UTC)")
    allow_partial_range: bool = Field(
        False,
        description="run on the bars the catalog holds when start/end reach beyond them (default: refuse, "
        "naming the missing span)",
    )
    signals: list[SignalsConfig] = Field(
        default_factory=list,
        description="signal records replayed from the catalog (qa signals build), delivered after the bar "
        "of the same time",
    )

    @model_validator(mode="after")
    def _check_signals(self) -> DataConfig:
        listed = [(signal.type, signal.instrument_id, signal.key) for signal in self.signals]
        if len(set(listed)) != len(listed):
            raise ValueError("the same signal records are listed twice in data.signals")
        instruments = {bars.instrument_id for bars in self.bars}
        for index, signal in enumerate(self.signals):
            if signal.instrument_id not in instruments:
                raise ValueError(
                    f"data.signals.{index}: instrument {signal.instrument_id} has no bars in data.bars "
                    f"(it lists {', '.join(sorted(instruments))})"
                )
        return self

    @field_validator("catalog", mode="before")
    @classmethod
    def _catalog(cls, value: Any) -> Path | str:
        from qa_engine.data.location import parse_catalog

        return parse_catalog(value)  # ValueError: unknown protocol, bad bucket name...

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        bar_types = [bars.bar_type for bars in self.bars]
        if len(set(bar_types)) != len(bar_types):
            raise ValueError("the same instrument and interval is listed twice in data.bars")
        return self


class ComponentConfig(_Model):
    """A strategy or actor: a registry name or `package.module:Class`, and its parameters.

    The parameters are validated by the component's own Nautilus config class when the run config
    is built (qa_engine.config.build), so an unknown or mistyped parameter fails before the run.
    """

    name: str = Field(description="registry name (e.g. ema_cross) or 'package.module:Class'")
    params: dict[str, Any] = Field(default_factory=dict, description="the component config's fields")


class EngineConfig(_Model):
    trader_id: str = Field("QA-001", pattern=r"^[A-Za-z0-9]+-[A-Za-z0-9]+$", description="Nautilus trader id")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Nautilus log level on the console (the run folder log keeps INFO)"
    )
    purge_closed_orders_every_bars: int = Field(
        1_000,
        ge=0,
        description="purge closed orders from the Cache every N bars (0: never); keeps long runs linear",
    )
    chunk_size_bars: int | None = Field(
        None,
        ge=100,
        description=(
            "stream the catalog through the engine in windows of this many bars (of the finest bar "
            "interval; funding updates and replayed signals of each window with them) instead of "
            "loading the whole range first: memory stays flat with the run length, same orders and "
            "fills; unset: load everything at once"
        ),
    )


class OutputConfig(_Model):
    directory: Path = Field(Path("runs"), description="parent of run folders runs/<utc>_<config-id>/")


# --- account protection (qa_engine.risk.kill_switches, actors/risk_guard.py) -------------------------

GuardAction = Literal["reduce", "conservative", "flatten", "halt"]
GuardResume = Literal["next_utc_day", "cool_down", "manual"]


class _RuleConfig(_Model):
    action: GuardAction = Field(
        "halt",
        description="reduce / conservative: trade at size_scale; flatten: close positions, reduce-only; "
        "halt: close positions, no orders",
    )
    resume: GuardResume = Field("next_utc_day", description="when trading resumes after the rule fired")
    cool_down_secs: int = Field(3_600, ge=0, description="resume = cool_down: this long after firing")
    confirm_evaluations: int = Field(
        2, ge=1, description="the condition must hold on this many consecutive evaluations to fire"
    )
    confirm_secs: int = Field(0, ge=0, description="... and for at least this long")
    size_scale: float = Field(0.5, gt=0, le=1, description="reduce / conservative: new orders at this size")


class DailyLossConfig(_RuleConfig):
    limit_pct: float = Field(
        5.0, gt=0, lt=100, description="fire at this loss from the UTC day's first equity"
    )


class ConsecutiveLossesConfig(_RuleConfig):
    max_losses: int = Field(5, ge=1, description="fire after this many losing round trips in a row")
    confirm_evaluations: int = Field(1, ge=1, description="the streak is its own confirmation")
    resume: GuardResume = Field("cool_down", description="when trading resumes after the rule fired")
    action: GuardAction = Field("flatten", description="see daily_loss")


class DrawdownConfig(_RuleConfig):
    limit_pct: float = Field(15.0, gt=0, lt=100, description="fire at this drawdown from the equity peak")
    resume: GuardResume = Field("manual", description="when trading resumes after the rule fired")


class VolatilitySpikeConfig(_RuleConfig):
    window_bars: int = Field(12, ge=3, description="realised volatility over this many bar returns")
    baseline_bars: int = Field(288, ge=3, description="... compared with its median over this many bars")
    multiple: float = Field(3.0, gt=1, description="fire when volatility exceeds this multiple of it")
    action: GuardAction = Field("reduce", description="see daily_loss")
    resume: GuardResume = Field("cool_down", description="cool_down: once calm again and cooled down")
    cool_down_secs: int = Field(1_800, ge=0, description="resume = cool_down: this long after firing")

    @model_validator(mode="after")
    def _check(self) -> VolatilitySpikeConfig:
        if self.baseline_bars < self.window_bars:
            raise ValueError(
                f"baseline_bars ({self.baseline_bars}) must be >= window_bars ({self.window_bars})"
            )
        return self


class ErrorRateConfig(_RuleConfig):
    max_errors: int = Field(10, ge=1, description="fire at this many order / API errors ...")
    window_secs: int = Field(300, ge=1, description="... within this window")
    confirm_evaluations: int = Field(1, ge=1, description="the count is its own confirmation")
    resume: GuardResume = Field("cool_down", description="cool_down: once the errors aged out")
    cool_down_secs: int = Field(900, ge=0, description="resume = cool_down: this long after firing")


class ModelDisagreementConfig(_RuleConfig):
    window: int = Field(24, ge=2, description="the last this many proposals ...")
    max_share: float = Field(0.6, gt=0, le=1, description="... disagreeing in at least this share")
    action: GuardAction = Field("conservative", description="see daily_loss")
    resume: GuardResume = Field("cool_down", description="cool_down: once they agree again")
    cool_down_secs: int = Field(0, ge=0, description="resume = cool_down: this long after firing")


class RiskLimitsConfig(_Model):
    max_position: dict[str, Decimal] = Field(
        default_factory=dict, description="instrument id -> largest absolute position (base units)"
    )
    risk_per_trade_pct: float | None = Field(
        None, gt=0, le=100, description="largest notional of one order as a share of equity"
    )
    max_order_submit_rate: str = Field(
        "100/00:00:01", pattern=r"^\d+/\d{2}:\d{2}:\d{2}$", description="Nautilus RiskEngine order rate"
    )
    max_notional_per_order: dict[str, int] = Field(
        default_factory=dict, description="instrument id -> largest notional of one order (quote currency)"
    )


class RiskConfig(_Model):
    """Kill switches (each rule off unless its section is present) and limits."""

    daily_loss: DailyLossConfig | None = None
    consecutive_losses: ConsecutiveLossesConfig | None = None
    drawdown: DrawdownConfig | None = None
    volatility_spike: VolatilitySpikeConfig | None = None
    error_rate: ErrorRateConfig | None = None
    model_disagreement: ModelDisagreementConfig | None = None
    limits: RiskLimitsConfig = RiskLimitsConfig()

    RULES: ClassVar[tuple[str, ...]] = (
        "daily_loss",
        "consecutive_losses",
        "drawdown",
        "volatility_spike",
        "error_rate",
        "model_disagreement",
    )

    def rules(self) -> dict[str, dict[str, Any]]:
        """The configured rules as plain dicts (qa_engine.risk.kill_switches.guard_from_rules)."""
        return {name: getattr(self, name).model_dump() for name in self.RULES if getattr(self, name)}


class BacktestConfig(_Model):
    """One backtest run. Loaded from TOML, overridable with `--set a.b=value`."""

    id: str = Field(description="config id: names the run folder", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str = ""
    venues: list[VenueConfig] = Field(min_length=1)
    data: DataConfig
    strategies: list[ComponentConfig] = Field(min_length=1)
    actors: list[ComponentConfig] = Field(default_factory=list)
    risk: RiskConfig = RiskConfig()
    engine: EngineConfig = EngineConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _check(self) -> BacktestConfig:
        names = [venue.name for venue in self.venues]
        if len(set(names)) != len(names):
            raise ValueError(f"venue names must be unique, got {names}")
        for bars in self.data.bars:
            if bars.venue not in names:
                raise ValueError(
                    f"data.bars instrument {bars.instrument_id} trades on venue {bars.venue}, "
                    f"which is not configured (venues: {', '.join(names)})",
                )
        return self

    def venue(self, name: str) -> VenueConfig:
        return next(venue for venue in self.venues if venue.name == name)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_\-]+", "-", text.lower()).strip("-")


# --- live runs ---------------------------------------------------------------------------------------

Environment = Literal["testnet", "demo", "mainnet"]
_HTTP_URL = r"^https?://\S+$"
_WS_URL = r"^wss?://\S+$"


class BybitEndpointsConfig(_Model):
    """Where each Bybit connection goes; None: the environment's own URL. Used by rehearsals against
    `qa venue simulate` (http://127.0.0.1:..., ws://127.0.0.1:...) and by proxies."""

    http: str | None = Field(
        None, pattern=_HTTP_URL, description="REST base URL, e.g. https://api-testnet.bybit.com"
    )
    ws_public: str | None = Field(None, pattern=_WS_URL, description="public (market data) websocket, linear")
    ws_private: str | None = Field(
        None, pattern=_WS_URL, description="private (orders, fills, wallet) websocket"
    )
    ws_trade: str | None = Field(None, pattern=_WS_URL, description="trade (order entry) websocket")

    def overridden(self) -> bool:
        return any(value is not None for value in (self.http, self.ws_public, self.ws_private, self.ws_trade))


class BinanceEndpointsConfig(_Model):
    http: str | None = Field(None, pattern=_HTTP_URL, description="USD-M futures REST base URL")
    ws: str | None = Field(None, pattern=_WS_URL, description="USD-M futures market-data websocket")


# --- operations: alerts, metrics, logs (qa_engine.ops) --------------------------------------------------

AlertKind = Literal["fills", "risk", "connection", "errors", "daily_summary"]
_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


class TelegramAlertsConfig(_Model):
    base_url: str = Field(
        "https://api.telegram.org",
        pattern=_HTTP_URL,
        description="Bot API server (a self-hosted one, a proxy)",
    )
    token_env: str = Field(
        "QA_TELEGRAM_BOT_TOKEN", pattern=_ENV_NAME, description="variable holding the bot token"
    )
    chat_id_env: str = Field(
        "QA_TELEGRAM_CHAT_ID", pattern=_ENV_NAME, description="variable holding the chat id"
    )


class DiscordAlertsConfig(_Model):
    webhook_env: str = Field(
        "QA_DISCORD_WEBHOOK_URL", pattern=_ENV_NAME, description="variable holding the webhook URL (a secret)"
    )
    base_url: str | None = Field(
        None, pattern=_HTTP_URL, description="send to this scheme and host instead of the webhook's own"
    )


class EmailAlertsConfig(_Model):
    host: str = Field(description="SMTP server")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (587), tls: implicit TLS (465), none: only for a local relay"
    )
    sender: str = Field(description="From address")
    recipients: list[str] = Field(min_length=1, description="To addresses")
    username_env: str | None = Field("QA_SMTP_USERNAME", pattern=_ENV_NAME, description="None: no login")
    password_env: str = Field("QA_SMTP_PASSWORD", pattern=_ENV_NAME)
    ca_file: Path | None = Field(None, description="CA bundle for a server with a private certificate")


class AlertsConfig(_Model):
    telegram: TelegramAlertsConfig | None = None
    discord: DiscordAlertsConfig | None = None
    email: EmailAlertsConfig | None = None
    events: list[AlertKind] = Field(
        default_factory=lambda: ["fills", "risk", "connection", "errors", "daily_summary"],
        description="what is sent",
    )
    rate_per_minute: float = Field(20.0, gt=0, description="per channel; alerts over it are dropped, counted")
    dedup_secs: float = Field(300.0, ge=0, description="the same alert again within this long is folded")
    retries: int = Field(3, ge=1, le=10, description="attempts per alert and channel (transient errors)")
    timeout_secs: float = Field(10.0, gt=0, description="per request")

    @model_validator(mode="after")
    def _check(self) -> AlertsConfig:
        if not (self.telegram or self.discord or self.email):
            raise ValueError("alerts: configure at least one channel (telegram, discord or email)")
        return self


class MetricsConfig(_Model):
    host: str = Field("127.0.0.1", description="address the Prometheus endpoint listens on")
    port: int = Field(9464, ge=0, le=65535, description="0: any free port (written to the run folder)")


class OpsConfig(_Model):
    alerts: AlertsConfig | None = None
    metrics: MetricsConfig | None = None
    json_logs: bool = Field(True, description="structlog JSON lines in the run folder (events.jsonl)")


class LiveSettings(_Model):
    environment: Environment = Field(
        "testnet", description="Bybit environment: testnet (default), demo, or mainnet (needs --yes)"
    )
    execution: Literal["bybit", "paper"] = Field(
        "bybit",
        description="bybit: orders go to Bybit; paper: a sandbox on live data with the backtest's fee, "
        "slippage, margin and funding rules (no keys needed for orders)",
    )
    data_source: Literal["bybit", "binance"] = Field(
        "bybit", description="market data from Bybit, or Binance USD-M futures (bars of BINANCE instruments)"
    )
    flatten_on_stop: bool = Field(
        False,
        description="on SIGINT/SIGTERM close every position at market (open orders are always cancelled)",
    )
    reconcile: bool = Field(True, description="on start, load the venue's open orders, fills and positions")
    reconciliation_lookback_mins: int | None = Field(
        1440, ge=1, description="how far back start-up reconciliation reads orders and fills (None: all)"
    )
    max_runtime_secs: float | None = Field(
        None, gt=0, description="stop by itself after this long (as SIGTERM does); None: until a signal"
    )
    bybit: BybitEndpointsConfig = BybitEndpointsConfig()
    binance: BinanceEndpointsConfig = BinanceEndpointsConfig()


class LiveConfig(_Model):
    """One live run. The strategies and actors sections are the same objects as in a backtest config."""

    id: str = Field(description="config id: names the run folder", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str = ""
    venues: list[VenueConfig] = Field(
        min_length=1,
        description="the execution venue (BYBIT): leverage; with execution = 'paper' also the simulated "
        "account (starting balance, fees, slippage, funding, liquidation)",
    )
    bars: list[BarsConfig] = Field(min_length=1, description="bar series the node subscribes to")
    strategies: list[ComponentConfig] = Field(min_length=1)
    actors: list[ComponentConfig] = Field(default_factory=list)
    risk: RiskConfig = RiskConfig()
    engine: EngineConfig = EngineConfig()
    output: OutputConfig = OutputConfig()
    live: LiveSettings = LiveSettings()
    ops: OpsConfig = OpsConfig()

    @model_validator(mode="after")
    def _check(self) -> LiveConfig:
        names = [venue.name for venue in self.venues]
        if names != ["BYBIT"]:
            raise ValueError(f"live runs execute on one venue, BYBIT; venues lists {names}")
        data_venue = "BINANCE" if self.live.data_source == "binance" else "BYBIT"
        for bars in self.bars:
            if bars.venue != data_venue:
                raise ValueError(
                    f"bars {bars.instrument_id}: data_source '{self.live.data_source}' streams "
                    f"{data_venue} instruments only"
                )
        if self.live.execution == "paper" and self.live.data_source != "bybit":
            raise ValueError("execution 'paper' simulates BYBIT on its own bars: set data_source = 'bybit'")
        bar_types = [bars.bar_type for bars in self.bars]
        if len(set(bar_types)) != len(bar_types):
            raise ValueError("the same instrument and interval is listed twice in bars")
        return self

    @classmethod
    def from_backtest(cls, config: BacktestConfig, live: LiveSettings) -> LiveConfig:
        """The live run of a backtest config: the same strategy and actor objects, the same venue."""
        return cls(
            id=config.id,
            description=config.description,
            venues=config.venues,
            bars=config.data.bars,
            strategies=config.strategies,
            actors=config.actors,
            risk=config.risk,
            engine=config.engine,
            output=config.output,
            live=live,
        )
