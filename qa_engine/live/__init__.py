"""Live trading: the TradingNode builder, the loopback Bybit v5 exchange, parity with backtests."""
