"""The markets the catalog knows: market name -> Nautilus venue and instrument id format.

The instrument definitions themselves live in adapters/ (found through qa_engine.plugins.load_instrument);
this module only names the markets, so that library code can check ids without importing adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from qa_engine.errors import ConfigError


class Market(StrEnum):
    BYBIT_LINEAR = "bybit-linear"
    BINANCE_FUTURES = "binance-futures"
    BINANCE_SPOT = "binance-spot"


@dataclass(frozen=True)
class MarketSpec:
    """How one market's instruments are named in Nautilus."""

    market: Market
    venue: str  # Nautilus venue name
    symbol_suffix: str  # appended to the exchange symbol: BTCUSDT -> BTCUSDT-LINEAR
    instrument_class: str  # Nautilus instrument class of the market's definitions
    description: str

    @property
    def instrument_id_format(self) -> str:
        return f"{{symbol}}{self.symbol_suffix}.{self.venue}"

    def instrument_id(self, symbol: str) -> str:
        """Exchange symbol -> Nautilus instrument id string ('BTCUSDT' -> 'BTCUSDT-LINEAR.BYBIT')."""
        return self.instrument_id_format.format(symbol=symbol)


MARKETS: dict[Market, MarketSpec] = {
    Market.BYBIT_LINEAR: MarketSpec(
        Market.BYBIT_LINEAR, "BYBIT", "-LINEAR", "CryptoPerpetual", "Bybit USDT linear perpetuals"
    ),
    Market.BINANCE_FUTURES: MarketSpec(
        Market.BINANCE_FUTURES, "BINANCE", "-PERP", "CryptoPerpetual", "Binance USD-M perpetuals"
    ),
    Market.BINANCE_SPOT: MarketSpec(Market.BINANCE_SPOT, "BINANCE", "", "CurrencyPair", "Binance spot"),
}


def market_spec(name: str | Market) -> MarketSpec:
    """The spec of market `name`; an unknown name is a config error listing the known markets."""
    try:
        return MARKETS[Market(name)]
    except ValueError:
        known = ", ".join(item.value for item in Market)
        raise ConfigError(f"unknown market '{name}'; known: {known}") from None
