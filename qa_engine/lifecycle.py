"""Component lifecycle helpers shared by our actors and strategies (Nautilus-aware, no state)."""

from __future__ import annotations


def stop_after_start(component, reason: str) -> None:
    """Stop `component` as soon as its start has completed.

    A component that finds in `on_start` that it cannot run (a refused model artifact, a missing
    instrument) must stop, but calling `stop()` inside `on_start` makes Nautilus log a spurious
    `InvalidStateTrigger('STOPPED -> START_COMPLETED')`: the start is still in progress. A time alert at
    the current time fires right after it, in backtests and live alike.
    """
    name = f"stop-after-start:{reason}"
    if name in component.clock.timer_names:  # already scheduled
        return
    component.clock.set_time_alert_ns(
        name=name,
        alert_time_ns=component.clock.timestamp_ns(),
        callback=lambda _event: component.stop(),
        allow_past=True,
    )


def attach_risk_engine(trader, risk_engine) -> None:
    """Hand the kernel's RiskEngine to the actors that set its TradingState (actors/risk_guard.py):
    Nautilus has no bus message for it. Called by the backtest runner and the live node after building."""
    for actor in trader.actors():
        if hasattr(actor, "attach_risk_engine"):
            actor.attach_risk_engine(risk_engine)
