"""Backtest report: built from the RunRecorderActor's records, written to the run folder.

Files: performance_metrics.json, trades.csv (one row per round trip), fills.csv, funding.csv (one row
per funding settlement of a position), equity_curve.csv, equity_curve.png (equity with a drawdown panel),
risk_events.csv and report.html (the interactive tearsheet, qa_engine.reporting.tearsheet).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from nautilus_trader.model.identifiers import InstrumentId

from qa_engine.backtest.fees import AppliedFeeRates
from qa_engine.backtest.fees import applied_fee_rates
from qa_engine.config.models import BacktestConfig
from qa_engine.reporting.plots import plot_equity_curve
from qa_engine.reporting.schema import EQUITY_CURVE_SCHEMA
from qa_engine.reporting.schema import ROUND_TRIP_SCHEMA
from qa_engine.reporting.schema import UTC_NS
from qa_engine.reporting.statistics import PerformanceMetrics
from qa_engine.reporting.statistics import compute_performance
from qa_engine.reporting.tearsheet import write_run_tearsheet

INTERVAL_SECS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Reconciliation:
    """starting balance + sum of round-trip net pnl + open position's net pnl = final equity.

    Net pnl includes fees, funding and liquidation fees; `funding` (received > 0, paid < 0) and
    `fees` (trading + liquidation fees) say how much of it they are."""

    starting_balance: Decimal
    closed_trades_net_pnl: Decimal
    open_position_net_pnl: Decimal
    final_equity: Decimal  # account balance (from Nautilus) + unrealised pnl at the last close
    funding: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    @property
    def difference(self) -> Decimal:
        return self.final_equity - (
            self.starting_balance + self.closed_trades_net_pnl + self.open_position_net_pnl
        )

    @property
    def balanced_to_the_cent(self) -> bool:
        return abs(self.difference) < CENT

    def to_dict(self) -> dict[str, Any]:
        return {
            "starting_balance": float(self.starting_balance),
            "closed_trades_net_pnl": float(self.closed_trades_net_pnl),
            "open_position_net_pnl": float(self.open_position_net_pnl),
            "final_equity": float(self.final_equity),
            "of_which_funding": float(self.funding),
            "of_which_fees": float(-self.fees),
            "difference": float(self.difference),
            "balanced_to_the_cent": self.balanced_to_the_cent,
        }


@dataclass(frozen=True)
class BacktestReport:
    config_id: str
    metrics: PerformanceMetrics
    reconciliation: Reconciliation
    trades: pl.DataFrame
    fills: pl.DataFrame
    equity: pl.DataFrame
    open_positions: dict[str, str]
    bars: int
    currency: str
    # Several instruments: each one's statistics on an equal share of the starting balance.
    per_instrument: dict[str, PerformanceMetrics]
    # The maker/taker rates each instrument was charged and where they came from.
    fee_rates: dict[str, AppliedFeeRates]
    # Funding: total (received > 0), settlements, which perpetuals were settled and why others were not.
    funding: dict[str, Any]
    funding_rows: pl.DataFrame
    # The venue simulation the run used: slippage, maintenance rates, liquidations, denied orders.
    venue_simulation: dict[str, Any]
    # Kill switches (actors/risk_guard.py): one row per trigger and resume; empty without a [risk] rule.
    risk_events: pl.DataFrame = field(default_factory=lambda: risk_events_frame([]))
    # Bar closes (ts, instrument_id, close): the price line under the trade markers of report.html.
    closes: pl.DataFrame = field(default_factory=lambda: closes_frame([]))


RISK_EVENT_COLUMNS = ("ts", "kind", "rule", "action", "value", "threshold", "message")


def risk_events_frame(events) -> pl.DataFrame:
    """The risk guard's GuardEvents (qa_engine.risk.kill_switches) as a table."""
    rows = [
        {
            "ts": event.ts_ns,
            "kind": event.kind,
            "rule": event.rule,
            "action": event.action,
            "value": event.value,
            "threshold": event.threshold,
            "message": event.message,
        }
        for event in events
    ]
    schema = {
        "ts": pl.Int64,
        "kind": pl.Utf8,
        "rule": pl.Utf8,
        "action": pl.Utf8,
        "value": pl.Float64,
        "threshold": pl.Float64,
        "message": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col("ts").cast(UTC_NS))


def closes_frame(rows) -> pl.DataFrame:
    """The recorder's bar closes (ts_ns, instrument_id, close) as a table, in time order: a list of
    rows or the recorder's BarRows (its `frame()`)."""
    schema = {"ts": pl.Int64(), "instrument_id": pl.Utf8(), "close": pl.Float64()}
    frame = rows.frame() if hasattr(rows, "frame") else pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.col("ts").cast(UTC_NS)).sort("ts", maintain_order=True)


def trades_frame(round_trips) -> pl.DataFrame:
    rows = [
        {
            "instrument_id": trip.instrument_id,
            "side": trip.side,
            "entry_ts": trip.entry_ts_ns,
            "exit_ts": trip.exit_ts_ns,
            "quantity": float(trip.quantity),
            "entry_price": float(trip.entry_price),
            "exit_price": float(trip.exit_price),
            "gross_pnl": float(trip.gross_pnl),
            "fees": float(trip.fees),
            "funding": float(trip.funding),
            "net_pnl": float(trip.net_pnl),
        }
        for trip in round_trips
    ]
    schema = {**ROUND_TRIP_SCHEMA, "entry_ts": pl.Int64(), "exit_ts": pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    return frame.with_columns(pl.col("entry_ts").cast(UTC_NS), pl.col("exit_ts").cast(UTC_NS))


def equity_frame(rows, first_ts_ns: int, starting_balance: float) -> pl.DataFrame:
    """One row per bar close (the last record at each close time), after a starting row. `rows`: a list
    of (ts_ns, equity, position_notional) or the recorder's BarRows of those columns."""
    schema = {"ts": pl.Int64(), "equity": pl.Float64(), "position_notional": pl.Float64()}
    start = pl.DataFrame([(first_ts_ns, starting_balance, 0.0)], schema=schema, orient="row")
    body = rows.frame() if hasattr(rows, "frame") else pl.DataFrame(list(rows), schema=schema, orient="row")
    frame = pl.concat([start, body.cast(schema)])
    frame = frame.unique(subset="ts", keep="last", maintain_order=True).sort("ts")
    return frame.with_columns(pl.col("ts").cast(UTC_NS)).select(list(EQUITY_CURVE_SCHEMA))


def per_instrument_metrics(
    recorder, trades: pl.DataFrame, start_ts_ns: int, starting_balance: Decimal, instruments: int
) -> dict[str, PerformanceMetrics]:
    """Statistics of each instrument on an equal share of the starting balance (only when several)."""
    if instruments < 2:
        return {}
    allocation = float(starting_balance) / instruments
    rows = recorder.instrument_pnl_rows.frame()
    fees = {}
    for fill in recorder.fill_rows:
        fees[fill["instrument_id"]] = fees.get(fill["instrument_id"], 0.0) + float(fill["fee"])
    result = {}
    for instrument_id in sorted(rows["instrument_id"].unique()):
        own = rows.filter(pl.col("instrument_id") == instrument_id)
        equity = equity_frame(
            [(ts, allocation + pnl, 0.0) for ts, _, pnl in own.rows()], start_ts_ns, allocation
        )
        result[instrument_id] = compute_performance(
            equity=equity,
            trades=trades.filter(pl.col("instrument_id") == instrument_id),
            starting_balance=allocation,
            fees_paid=fees.get(instrument_id, 0.0),
        )
    return result


def funding_frame(payments) -> pl.DataFrame:
    schema = {
        "ts": pl.Int64(),
        "instrument_id": pl.Utf8(),
        "rate": pl.Utf8(),
        "price": pl.Utf8(),
        "position": pl.Utf8(),
        "amount": pl.Utf8(),
        "currency": pl.Utf8(),
    }
    rows = [
        (
            p.ts_ns,
            p.instrument_id,
            str(p.rate),
            str(p.price),
            str(p.signed_quantity),
            str(p.amount),
            p.currency,
        )
        for p in payments
    ]
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.with_columns(pl.col("ts").cast(UTC_NS))


def funding_summary(recorder, plan) -> dict[str, Any]:
    by_instrument: dict[str, Decimal] = {}
    for payment in recorder.funding_payments:
        by_instrument[payment.instrument_id] = (
            by_instrument.get(payment.instrument_id, Decimal(0)) + payment.amount
        )
    return {
        "simulated": bool(plan.settled),
        "total": float(recorder.funding_total),
        "settlements": len(recorder.funding_payments),
        "by_instrument": {name: float(total) for name, total in by_instrument.items()},
        "settled": plan.settled,
        "not_settled": plan.not_settled,
    }


def venue_simulation(config: BacktestConfig, recorder) -> dict[str, Any]:
    from qa_engine.risk.margin import maintenance_margin_rate

    venues = {}
    for venue in config.venues:
        ids = list(dict.fromkeys(b.instrument_id for b in config.data.bars if b.venue == venue.name))
        rates = {i: maintenance_margin_rate(i, venue.maintenance_margin_rate) for i in ids}
        venues[venue.name] = {
            "slippage_bps_market_orders": venue.slippage_bps,
            "leverage": venue.leverage,
            "liquidation": venue.liquidation and venue.account_type == "MARGIN",
            "maintenance_margin_rates": {i: {"rate": str(r), "source": src} for i, (r, src) in rates.items()},
            "liquidation_fee_rate": str(venue.liquidation_fee_rate)
            if venue.liquidation_fee_rate is not None
            else "the maintenance-margin rate",
        }
    return {
        "venues": venues,
        "liquidations": [
            {
                **{k: str(v) for k, v in dataclasses.asdict(record).items() if k != "ts_ns"},
                "ts": f"{datetime.fromtimestamp(record.ts_ns / 1e9, UTC):%Y-%m-%dT%H:%M:%SZ}",
            }
            for record in recorder.liquidations
        ],
        "liquidation_fees": float(recorder.liquidation_fees),
        "orders_denied": len(recorder.denied_orders),
        "orders_denied_first": [
            {**row, "ts_ns": f"{datetime.fromtimestamp(row['ts_ns'] / 1e9, UTC):%Y-%m-%dT%H:%M:%SZ}"}
            for row in recorder.denied_orders[:5]
        ],
    }


def build_report(config: BacktestConfig, recorder, funding_plan, risk_events=()) -> BacktestReport:
    """`funding_plan`: qa_engine.config.build.FundingPlan, which perpetuals had funding settled;
    `risk_events`: the risk guard's GuardEvents, if the run had one."""
    starting_balance = sum((Decimal(str(v.starting_balance)) for v in config.venues), Decimal(0))
    trades = trades_frame(recorder.round_trips)
    smallest_interval_ns = min(INTERVAL_SECS[b.interval] for b in config.data.bars) * 1_000_000_000
    first_close_ns = (
        recorder.equity_rows[0][0] if recorder.equity_rows else int(config.data.start.timestamp() * 1e9)
    )
    equity = equity_frame(
        recorder.equity_rows, first_close_ns - smallest_interval_ns, float(starting_balance)
    )
    metrics = compute_performance(
        equity=equity,
        trades=trades,
        starting_balance=float(starting_balance),
        fees_paid=float(recorder.fees_paid),
    )
    reconciliation = Reconciliation(
        starting_balance=starting_balance,
        closed_trades_net_pnl=sum((trip.net_pnl for trip in recorder.round_trips), Decimal(0)),
        open_position_net_pnl=recorder.open_net_pnl(),
        final_equity=recorder.equity(),
        funding=recorder.funding_total,
        fees=recorder.fees_paid + recorder.liquidation_fees,
    )
    per_instrument = per_instrument_metrics(
        recorder, trades, first_close_ns - smallest_interval_ns, starting_balance, len(config.data.bars)
    )
    fills = pl.DataFrame(recorder.fill_rows) if recorder.fill_rows else pl.DataFrame()
    if fills.height:
        fills = (
            fills.with_columns(pl.col("ts_ns").cast(UTC_NS).alias("ts"))
            .drop("ts_ns")
            .select(
                ["ts", *[c for c in fills.columns if c != "ts_ns"]],
            )
        )
    open_positions = {
        instrument_id: str(recorder.book.signed_quantity(instrument_id))
        for instrument_id in recorder.book.positions
    }
    return BacktestReport(
        config_id=config.id,
        metrics=metrics,
        reconciliation=reconciliation,
        trades=trades,
        fills=fills,
        equity=equity,
        open_positions=open_positions,
        bars=recorder.bars_seen,
        currency=config.venues[0].currency,
        per_instrument=per_instrument,
        fee_rates=applied_fee_rates(config.venues, _run_instruments(config, recorder)),
        funding=funding_summary(recorder, funding_plan),
        funding_rows=funding_frame(recorder.funding_payments),
        venue_simulation=venue_simulation(config, recorder),
        risk_events=risk_events_frame(risk_events),
        closes=closes_frame(recorder.close_rows),
    )


def _run_instruments(config: BacktestConfig, recorder) -> list:
    """The Nautilus instruments of the run's bar series, as the engine's cache holds them."""
    ids = dict.fromkeys(InstrumentId.from_str(bars.instrument_id) for bars in config.data.bars)
    return [instrument for i in ids if (instrument := recorder.cache.instrument(i)) is not None]


def write_report(report: BacktestReport, run_dir: Path, title: str) -> None:
    payload = {
        "config_id": report.config_id,
        "bars": report.bars,
        **report.metrics.to_dict(),
        "open_positions": report.open_positions,
        "per_instrument": {name: metrics.to_dict() for name, metrics in report.per_instrument.items()},
        "reconciliation": report.reconciliation.to_dict(),
        "fee_rates": {name: rates.to_dict() for name, rates in report.fee_rates.items()},
        "funding": report.funding,
        "venue_simulation": report.venue_simulation,
        "risk_guard": risk_guard_summary(report.risk_events),
    }
    (run_dir / "performance_metrics.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    report.trades.write_csv(run_dir / "trades.csv", datetime_format="%Y-%m-%dT%H:%M:%S%.3fZ")
    report.fills.write_csv(run_dir / "fills.csv", datetime_format="%Y-%m-%dT%H:%M:%S%.3fZ")
    report.funding_rows.write_csv(run_dir / "funding.csv", datetime_format="%Y-%m-%dT%H:%M:%SZ")
    report.equity.write_csv(run_dir / "equity_curve.csv", datetime_format="%Y-%m-%dT%H:%M:%SZ")
    report.risk_events.write_csv(run_dir / "risk_events.csv", datetime_format="%Y-%m-%dT%H:%M:%SZ")
    plot_equity_curve(
        report.equity,
        run_dir / "equity_curve.png",
        title=title,
        trades=report.trades,
        quote_currency=report.currency,
        risk_events=report.risk_events,
    )
    write_run_tearsheet(report, run_dir, title, prices=report.closes)


def risk_guard_summary(events: pl.DataFrame) -> dict[str, Any]:
    """Triggers and resumes per rule, for performance_metrics.json."""
    summary: dict[str, Any] = {}
    for row in events.iter_rows(named=True):
        entry = summary.setdefault(row["rule"], {"action": row["action"], "triggers": 0, "resumes": 0})
        entry["triggers" if row["kind"] == "trigger" else "resumes"] += 1
    return summary


__all__ = ["BacktestReport", "Reconciliation", "build_report", "write_report"]
