"""Sweeps and walk-forward optimisation as Ray tasks (one backtest per task), with overfitting statistics."""
