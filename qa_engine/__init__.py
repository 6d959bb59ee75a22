"""QUANTUM ALPHA engine library: config, data, features, models, inference, risk, backtest, reporting, CLI.

Never imports strategies/, actors/ or adapters/ statically; qa_engine.plugins resolves them by name.
"""
