"""report.html of a real run and of a real comparison (3 days of the committed sample catalog): written
beside the PNGs, self-contained, every chart present, the header from the run's own metrics; and the
same files opened in a real headless Chromium.

The browser test drives Debian's Chromium (`apt-get install chromium`, /usr/bin/chromium) through the
Python `playwright` package (the dev extra), never playwright's downloaded browsers. Without them it is
skipped locally, with a message saying what to install; under CI (`CI` set, or `QA_REQUIRE_BROWSER=1`
as .ci/run sets it) it fails instead. Its screenshots are kept in `test-artifacts/` at the repository
root (git-ignored): report-html-run.png, report-html-guarded.png and report-html-comparison.png.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from qa_engine.backtest.compare import compare_strategies
from qa_engine.backtest.runner import run_backtest
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.reporting.statistics import DAYS_PER_YEAR
from qa_engine.reporting.tearsheet import FILE_NAME
from tests.pristine import pristine_catalog

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
THREE_DAYS = ["data.start=2025-01-01T00:00:00Z", "data.end=2025-01-04T00:00:00Z"]
RUN_CHARTS = ("chart-equity", "chart-price", "chart-monthly", "chart-rolling-sharpe", "chart-costs")


def _config(name: str) -> BacktestConfig:
    return load_config(
        BacktestConfig,
        ROOT / "configs/backtest" / name,
        [f'data.catalog="{pristine_catalog()}"', *THREE_DAYS],
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_backtest(_config("default.toml"), run_dir=tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    return compare_strategies(
        _config("compare.toml"), "sharpe_ratio", run_dir=tmp_path_factory.mktemp("compare")
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The default strategy with every kill switch on: 6 events in these 3 days."""
    return run_backtest(_config("guarded.toml"), run_dir=tmp_path_factory.mktemp("guarded"))


def _report(which: str, run, comparison, guarded) -> Path:
    return {"run": run, "comparison": comparison, "guarded": guarded}[which].run_dir / FILE_NAME


def _figure_json(page: str, div_id: str) -> dict:
    """The figure plotly.js is given for one chart div: Plotly.newPlot("id", data, layout, config)."""
    call = re.search(
        rf'Plotly\.newPlot\(\s*"{div_id}",\s*(\[.*?\]),\s*(\{{.*?\}}),\s*\{{"displaylogo"', page, re.S
    )
    assert call, f"no Plotly.newPlot call for {div_id}"
    return {"data": json.loads(call.group(1)), "layout": json.loads(call.group(2))}


def test_report_html_is_written_beside_the_pngs_of_a_run_and_of_a_comparison(run, comparison):
    assert (run.run_dir / FILE_NAME).is_file() and (run.run_dir / "equity_curve.png").is_file()
    assert (comparison.run_dir / FILE_NAME).is_file() and (
        comparison.run_dir / "equity_comparison.png"
    ).is_file()
    for label in comparison.outcomes:  # each member's own run folder has one too
        assert (comparison.run_dir / label / FILE_NAME).is_file()


@pytest.mark.parametrize("which", ["run", "guarded", "comparison"])
def test_report_html_is_self_contained(which, run, comparison, guarded):
    page = _report(which, run, comparison, guarded).read_text(encoding="utf-8")

    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I), "a script loaded from elsewhere"
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.I), (
        "a stylesheet or resource loaded from elsewhere"
    )
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.I), "css fetched from the network"
    assert not re.search(r"<(?:img|iframe)[^>]*\bsrc\s*=\s*['\"]?https?:", page, re.I)
    assert len(re.findall(r"plotly\.js v\d+\.\d+\.\d+", page)) == 1, "plotly.js must be inlined exactly once"


def test_run_report_holds_every_chart_and_table(run):
    page = (run.run_dir / FILE_NAME).read_text(encoding="utf-8")

    for div_id in RUN_CHARTS:
        assert f'id="{div_id}"' in page
    assert 'id="metrics"' in page and 'id="round-trips"' in page
    assert 'id="risk-events-empty"' in page  # the default config has no [risk] rule
    assert page.count("<tr>") - 1 >= run.report.trades.height  # one row per round trip (+ header rows)


def test_run_header_shows_the_runs_own_metrics(run):
    page = (run.run_dir / FILE_NAME).read_text(encoding="utf-8")
    metrics = run.report.metrics

    assert f"{metrics.sharpe_ratio:,.2f} / {metrics.sortino_ratio:,.2f}" in page
    assert f"{metrics.max_drawdown:,.2f} ({metrics.max_drawdown_pct:,.2f} %)" in page
    assert f"{metrics.final_equity:,.2f} USDT" in page
    assert f"{metrics.fees_paid:,.2f} USDT" in page


def test_price_chart_marks_every_fill_of_the_run(run):
    figure = _figure_json((run.run_dir / FILE_NAME).read_text(encoding="utf-8"), "chart-price")
    markers = {
        trace["name"]: _length(trace["y"]) for trace in figure["data"] if trace.get("mode") == "markers"
    }

    # One fill opens each round trip (and the position still open), one closes it; a flip does both.
    trips = run.report.trades.height
    assert trips > 10
    assert markers["Long entry"] + markers["Short entry"] == trips + len(run.report.open_positions)
    assert markers["Exit"] == trips


def test_rolling_sharpe_title_names_the_365_day_annualisation(run):
    figure = _figure_json((run.run_dir / FILE_NAME).read_text(encoding="utf-8"), "chart-rolling-sharpe")

    assert f"annualised with {DAYS_PER_YEAR} days" in figure["layout"]["title"]["text"]
    assert "1-day window (288 bars of 5 min)" in figure["layout"]["title"]["text"]


def test_kill_switch_events_are_listed_and_drawn_on_both_equity_panels(guarded):
    page = (guarded.run_dir / FILE_NAME).read_text(encoding="utf-8")
    events = guarded.report.risk_events
    table = re.search(r'<table class="data" id="risk-events">(.*?)</table>', page, re.S)
    shapes = _figure_json(page, "chart-equity")["layout"]["shapes"]

    assert events.height > 0 and table
    assert table.group(1).count("<tr") - 1 == events.height
    vertical = [shape for shape in shapes if shape["yref"].endswith("domain")]
    assert len(vertical) == 2 * events.height  # equity and drawdown panels
    first = events["ts"][0].strftime("%Y-%m-%dT%H:%M:%S")
    assert any(str(shape["x0"]).startswith(first) for shape in vertical)


def test_comparison_report_links_every_member_and_marks_the_best(comparison):
    page = (comparison.run_dir / FILE_NAME).read_text(encoding="utf-8")

    for label in comparison.outcomes:
        assert f'href="{label}/{FILE_NAME}"' in page
    assert re.search(rf'<tr class="best"><td class="text">{comparison.best}</td>', page)
    figure = _figure_json(page, "chart-comparison")
    assert len(figure["data"]) == 2 * len(comparison.outcomes)  # equity and drawdown per member


def _length(values) -> int:
    """Length of a plotly JSON array: a plain list, or a typed array {"dtype", "bdata"} (plotly >= 6)."""
    if isinstance(values, list):
        return len(values)
    import base64

    import numpy as np

    return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))


# ---- a real browser ----------------------------------------------------------------------------------


def _browser_or_skip():
    """playwright's sync API, or skip (locally) / fail (CI) saying what is missing."""
    required = os.environ.get("QA_REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() not in (
        "",
        "0",
        "false",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    problem = None
    if not CHROMIUM.is_file():
        problem = f"{CHROMIUM} is missing: install Debian's Chromium with `apt-get install chromium`"
    elif sync_playwright is None:
        problem = "the playwright package is missing: `.venv/bin/pip install -e '.[dev]'`"
    if problem:
        (pytest.fail if required else pytest.skip)(f"browser test: {problem}")
    return sync_playwright


@pytest.mark.browser
@pytest.mark.parametrize(
    ("which", "charts"), [("run", len(RUN_CHARTS)), ("guarded", len(RUN_CHARTS)), ("comparison", 1)]
)
def test_report_html_renders_in_headless_chromium_without_errors(which, charts, run, comparison, guarded):
    sync_playwright = _browser_or_skip()
    path = _report(which, run, comparison, guarded)
    errors: list[str] = []
    requests: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}", timeout=20_000
            )
            plots = page.locator(".js-plotly-plot")
            svg_counts = [plots.nth(i).locator(".main-svg").count() for i in range(plots.count())]
            points = page.locator(".js-plotly-plot .scatterlayer .trace path").count()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report-html-{which}.png"), full_page=True)
        finally:
            browser.close()

    assert errors == []
    assert [url for url in requests if not url.startswith(("file:", "data:", "blob:"))] == []
    assert len(svg_counts) == charts and all(count >= 1 for count in svg_counts)
    assert points > 0  # lines were drawn, not just empty axes
    assert (ARTIFACTS / f"report-html-{which}.png").stat().st_size > 50_000


def test_artifacts_folder_is_git_ignored():
    assert "test-artifacts/" in (ROOT / ".gitignore").read_text().splitlines()
