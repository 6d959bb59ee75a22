"""The default backtest on the committed real-data sample catalog: golden summary and an
independent reconciliation of the report against the fills."""

from __future__ import annotations

import json
from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from tests.pristine import pristine_catalog

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "backtest_default_summary.json"


def _run_default(root: Path, run_dir: Path, overrides: tuple[str, ...] = ()):
    config = load_config(
        BacktestConfig,
        root / "configs/backtest/default.toml",
        [f'data.catalog="{pristine_catalog()}"', *overrides],
    )
    return run_backtest(config, run_dir=run_dir)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, request):
    return _run_default(Path(request.config.rootpath), tmp_path_factory.mktemp("run"))


def test_run_folder_holds_every_report_file(outcome):
    names = {p.name for p in outcome.run_dir.iterdir()}
    assert {
        "config.toml",
        "performance_metrics.json",
        "trades.csv",
        "fills.csv",
        "equity_curve.csv",
        "equity_curve.png",
        "report.html",
    } <= names
    assert (outcome.run_dir / "equity_curve.png").stat().st_size > 20_000


def test_summary_matches_the_reviewed_golden_file(outcome, regen_golden):
    metrics = json.loads((outcome.run_dir / "performance_metrics.json").read_text())
    fills = pl.read_csv(outcome.run_dir / "fills.csv")
    summary = {
        "bars": metrics["bars"],
        "fills": fills.height,
        "first_fills": fills.head(3).select("ts", "side", "quantity", "price", "fee").rows(),
        "round_trips": metrics["total_trades"],
        "wins": metrics["wins"],
        "losses": metrics["losses"],
        "final_equity": round(metrics["final_equity"], 2),
        "fees_paid": round(metrics["fees_paid"], 2),
        "max_drawdown_pct": round(metrics["max_drawdown_pct"], 4),
        "sharpe_ratio": round(metrics["sharpe_ratio"], 4),
        "open_positions": metrics["open_positions"],
        "fee_rates": metrics["fee_rates"],
    }
    if regen_golden:
        GOLDEN.write_text(json.dumps(summary, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert json.loads(json.dumps(summary)) == golden


def test_fills_are_at_the_signal_bar_close_never_a_later_price(outcome, sample_catalog):
    # Latency 0 with bar data: an order sent on a bar close fills at that close, at that time, 1 bp
    # worse (the default slippage of market orders), rounded to the 0.1 tick against the trader.
    bars = ParquetDataCatalog(str(sample_catalog)).bars(["BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"])
    close_at = {bar.ts_event: bar.close.as_decimal() for bar in bars}
    fills = pl.read_csv(outcome.run_dir / "fills.csv", try_parse_dates=True, infer_schema=False)
    tick = Decimal("0.1")
    for ts, side, price in fills.select(
        pl.col("ts").str.to_datetime(time_zone="UTC").dt.epoch("ns"), "side", "price"
    ).rows():
        close = close_at[ts]
        if side == "BUY":
            expected = (close * Decimal("1.0001") / tick).to_integral_value(rounding=ROUND_CEILING) * tick
        else:
            expected = (close * Decimal("0.9999") / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
        assert Decimal(price) == expected


def _funding_from_fills(signed_at, catalog: Path) -> list[tuple[int, Decimal]]:
    """Funding rebuilt from the fills and the catalog: at each funding time T of the run, the position
    of the fills stamped before T pays -position x (close of the bar closing at T) x rate."""
    from nautilus_trader.model.data import FundingRateUpdate

    store = ParquetDataCatalog(str(catalog))
    closes = {bar.ts_event: bar.close.as_decimal() for bar in store.bars([BAR_TYPE])}
    payments = []
    for update in store.query(FundingRateUpdate, identifiers=["BTCUSDT-LINEAR.BYBIT"]):
        if update.ts_event not in closes:
            continue  # outside the run's bars
        position = sum((q for ts, q in signed_at if ts < update.ts_event), Decimal(0))
        if position:
            amount = -position * closes[update.ts_event] * Decimal(str(update.rate))
            payments.append((update.ts_event, amount.quantize(Decimal("0.00000001"))))
    return payments


BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"


def test_funding_is_what_the_positions_owed_at_each_funding_time(outcome, sample_catalog):
    metrics = json.loads((outcome.run_dir / "performance_metrics.json").read_text())
    fills = pl.read_csv(outcome.run_dir / "fills.csv", try_parse_dates=True)
    signed_at = [
        (ts, Decimal(str(q)) * (1 if side == "BUY" else -1))
        for ts, side, q in fills.select(pl.col("ts").dt.epoch("ns"), "side", "quantity").rows()
    ]
    payments = _funding_from_fills(signed_at, sample_catalog)
    total = sum((amount for _, amount in payments), Decimal(0))
    assert metrics["funding"]["settlements"] == len(payments) == 93  # every 8 h funding time of January
    assert Decimal(str(metrics["funding"]["total"])) == pytest.approx(total, abs=Decimal("0.000001"))


def test_report_reconciles_with_the_fills_to_the_cent(outcome, sample_catalog):
    """Independent of our round-trip code: cash flows of fills.csv plus funding rebuilt from the fills
    and the catalog's rates, plus the open position marked at the last close; and trades.csv net pnl
    plus the open round trip rebuilt from fills.csv."""
    metrics = json.loads((outcome.run_dir / "performance_metrics.json").read_text())
    start = Decimal(str(metrics["starting_balance"]))
    fills = pl.read_csv(outcome.run_dir / "fills.csv", infer_schema=False).rows(named=True)
    trades = pl.read_csv(outcome.run_dir / "trades.csv", infer_schema=False)
    bars = ParquetDataCatalog(str(sample_catalog)).bars(["BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"])
    last_close = bars[-1].close.as_decimal()

    signed = [
        (Decimal(f["quantity"]) * (1 if f["side"] == "BUY" else -1), Decimal(f["price"]), Decimal(f["fee"]))
        for f in fills
    ]
    position = sum((q for q, _, _ in signed), Decimal(0))
    cash = sum((-q * p - fee for q, p, fee in signed), Decimal(0))
    fill_times = (
        pl.read_csv(outcome.run_dir / "fills.csv", try_parse_dates=True)["ts"].dt.epoch("ns").to_list()
    )
    payments = _funding_from_fills(
        list(zip(fill_times, [q for q, _, _ in signed], strict=True)), sample_catalog
    )
    funding = sum((amount for _, amount in payments), Decimal(0))
    equity_from_fills = start + cash + funding + position * last_close
    final_equity = Decimal(str(metrics["final_equity"]))
    assert abs(final_equity - equity_from_fills) < Decimal("0.01")

    # The open round trip: fills since the position last crossed or touched zero.
    running = Decimal(0)
    opened_at = 0
    opening_share = Decimal(1)
    for index, (q, _, _) in enumerate(signed):
        before, running = running, running + q
        if running == 0 or (before != 0 and (before > 0) != (running > 0)):
            opened_at, opening_share = index + 1, Decimal(1)
            if running != 0:  # a flip: only the part beyond zero opens the new round trip
                opened_at, opening_share = index, abs(running) / abs(q)
    open_cash = Decimal(0)
    for index, (q, p, fee) in enumerate(signed[opened_at:]):
        share = opening_share if index == 0 else Decimal(1)
        open_cash += share * (-q * p - fee)
    # funding of the open round trip: the settlements after its opening fill
    open_funding = sum((amount for ts, amount in payments if ts > fill_times[opened_at]), Decimal(0))
    open_net = open_cash + open_funding + position * last_close
    trades_net = sum((Decimal(v) for v in trades["net_pnl"]), Decimal(0))
    assert abs(start + trades_net + open_net - final_equity) < Decimal("0.01")


def test_equity_curve_is_one_row_per_bar_close_plus_the_start(outcome):
    equity = pl.read_csv(outcome.run_dir / "equity_curve.csv")
    assert equity.height == outcome.bars + 1
    assert equity["equity"][0] == 10_000.0


def test_the_default_run_charges_bybit_base_rates_from_the_instrument(outcome):
    rates = json.loads((outcome.run_dir / "performance_metrics.json").read_text())["fee_rates"]

    assert rates == {
        "BTCUSDT-LINEAR.BYBIT": {"maker": "0.0002", "taker": "0.00055", "source": "instrument definition"}
    }


def test_run_config_rates_equal_to_the_instruments_give_the_same_fills(outcome, tmp_path, request):
    same = _run_default(
        Path(request.config.rootpath),
        tmp_path,
        ("venues.0.maker_fee_rate=0.0002", "venues.0.taker_fee_rate=0.00055"),
    )

    assert (same.run_dir / "fills.csv").read_bytes() == (outcome.run_dir / "fills.csv").read_bytes()
    assert same.report.fee_rates["BTCUSDT-LINEAR.BYBIT"].source == "run config"


def test_an_account_rate_is_charged_on_every_fill_exactly(tmp_path, request):
    vip = _run_default(
        Path(request.config.rootpath),
        tmp_path,
        ("venues.0.maker_fee_rate=0.0001", "venues.0.taker_fee_rate=0.0003"),
    )
    fills = pl.read_csv(vip.run_dir / "fills.csv", infer_schema=False).rows(named=True)

    assert fills
    for fill in fills:  # market orders: taker; fee = notional x rate, rounded to the cent of USDT's 8 dp
        expected = Decimal(fill["quantity"]) * Decimal(fill["price"]) * Decimal("0.0003")
        assert abs(Decimal(fill["fee"]) - expected) < Decimal("0.00000001")
    total = sum(Decimal(f["fee"]) for f in fills)
    assert abs(Decimal(str(vip.report.metrics.fees_paid)) - total) < Decimal("0.01")
    assert vip.report.reconciliation.balanced_to_the_cent
