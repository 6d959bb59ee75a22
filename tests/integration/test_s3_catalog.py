"""A catalog on an S3-compatible object store (moto's server on 127.0.0.1), read by URI:

- the default backtest on `s3://.../catalog` equals the same backtest on the local copy (every fill), and no
  credential reaches the run folder;
- a sweep (process pool, 2 workers: each reads the catalog by URI in its own process, with the
  environment it inherited) gives the same results per grid point as on the local copy;
- `qa catalog ingest --catalog s3://...` writes the same bar files a local ingest writes, idempotently,
  and `qa catalog list` reads them back;
- a bad catalog URI fails validation naming the field and the protocol (exit 2, no traceback).

moto runs in its own process: Nautilus' Rust reader blocks in a call that holds the GIL, so a server thread
in this process (ThreadedMotoServer) could never answer it. Credentials and endpoint are in the
environment only (monkeypatch), as a user's would be.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from adapters.bybit.providers import bybit_linear_instrument
from qa_engine.backtest.runner import run_backtest
from qa_engine.cli.main import main
from qa_engine.config.loader import load_config
from qa_engine.config.models import BacktestConfig
from qa_engine.data.catalog import catalog_coverage
from qa_engine.data.funding import read_funding_table
from qa_engine.data.ingest import ingest_klines
from qa_engine.errors import ConfigError
from qa_engine.errors import DataError
from qa_engine.sweep.config import SweepConfig
from qa_engine.sweep.engine import PoolExecutor
from qa_engine.sweep.engine import SweepPlan
from qa_engine.sweep.engine import run_sweep
from tests.factories import real_klines
from tests.ops_receivers import free_port

pytest.importorskip("s3fs", reason="the sweep extra is not installed: pip install -e '.[sweep]'")
pytest.importorskip("moto.server", reason="the dev extra is not installed: pip install -e '.[dev]'")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "backtest" / "default.toml"
BUCKET = "qa-test"
ACCESS_KEY = "AKIAQATEST"
SECRET_KEY = "qa-secret-7c1d0f3b9e2a"  # grepped for in every output of a run
THREE_DAYS = ("data.start=2025-01-01T00:00:00Z", "data.end=2025-01-04T00:00:00Z")


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on a free port of 127.0.0.1, in its own process; stopped after the module."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto's server did not start on {endpoint}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path):
    """The environment a user sets: credentials, region, endpoint; no profile or config file of the
    machine's is read (they could name other credentials)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


def _s3():
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached instance may hold another test's endpoint
    return s3fs.S3FileSystem()  # credentials and endpoint from the environment, as the code reads them


@pytest.fixture
def s3_catalog(s3_env, sample_catalog) -> str:
    """A copy of the committed sample catalog at s3://qa-test/catalog."""
    fs = _s3()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    if not fs.exists(f"{BUCKET}/catalog/data"):
        fs.put(str(sample_catalog / "data"), f"{BUCKET}/catalog/data", recursive=True)
    local = sorted(
        p.relative_to(sample_catalog).as_posix() for p in (sample_catalog / "data").rglob("*.parquet")
    )
    remote = sorted(name.removeprefix(f"{BUCKET}/catalog/") for name in fs.find(f"{BUCKET}/catalog"))
    assert remote == local
    return f"s3://{BUCKET}/catalog"


def _backtest(catalog: str | Path, run_dir: Path):
    config = load_config(BacktestConfig, DEFAULT_CONFIG, [f'data.catalog="{catalog}"', *THREE_DAYS])
    outcome = run_backtest(config, run_dir=run_dir)
    metrics = json.loads((outcome.run_dir / "performance_metrics.json").read_text())
    return metrics, pl.read_csv(outcome.run_dir / "fills.csv")


@pytest.mark.timeout(300)
def test_a_backtest_on_s3_equals_the_backtest_on_the_local_copy(s3_catalog, sample_catalog, tmp_path):
    local_metrics, local_fills = _backtest(sample_catalog, tmp_path / "local")
    s3_metrics, s3_fills = _backtest(s3_catalog, tmp_path / "s3")

    assert s3_metrics["bars"] == local_metrics["bars"] == 3 * 288
    assert local_metrics["total_trades"] > 5  # the comparison is about something
    assert local_metrics["funding"]["settlements"] > 0  # funding rates read from the catalog too
    for name in (
        "final_equity",
        "total_trades",
        "fees_paid",
        "funding",
        "sharpe_ratio",
        "max_drawdown_pct",
    ):
        assert s3_metrics.get(name) == local_metrics.get(name), name
    assert s3_fills.equals(local_fills)
    assert (tmp_path / "s3" / "config.toml").read_text().count(s3_catalog) == 1
    for file in (tmp_path / "s3").rglob("*"):
        if file.is_file():
            assert SECRET_KEY.encode() not in file.read_bytes(), file


def _sweep(catalog: str | Path, out: Path) -> dict[str, tuple]:
    sweep = SweepConfig.model_validate(
        {
            "id": "s3-test",
            "base": str(DEFAULT_CONFIG),
            "set": [f"data.catalog={catalog}", "data.end=2025-01-03T00:00:00Z"],
            "search": {
                "method": "grid",
                "params": [
                    {"path": "strategies.0.params.fast_ema_period", "name": "fast", "values": [6, 12]},
                    {"path": "strategies.0.params.slow_ema_period", "name": "slow", "values": [26, 40]},
                ],
            },
            "output": str(out),
        }
    )
    plan = SweepPlan.build(sweep, load_config(BacktestConfig, sweep.base, sweep.set))
    executor = PoolExecutor(workers=2)
    try:
        results = run_sweep(plan, out, executor=executor)
    finally:
        executor.close()
    assert results.height == 4
    assert results["status"].to_list() == ["ok"] * 4, results["error"].to_list()
    return {
        row["params"]: (row["sharpe_ratio"], row["final_equity"], row["total_trades"])
        for row in results.iter_rows(named=True)
    }


@pytest.mark.timeout(600)
def test_a_sweep_on_s3_equals_the_sweep_on_the_local_copy(s3_catalog, sample_catalog, tmp_path):
    local = _sweep(sample_catalog, tmp_path / "local")
    on_s3 = _sweep(s3_catalog, tmp_path / "s3")

    assert len(local) == 4
    assert on_s3 == local
    assert len({figures[1] for figures in local.values()}) > 1  # the grid points differ


def _files(root: Path, relative: str) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((root / relative).glob("*"))
    }


def test_ingest_into_s3_writes_what_a_local_ingest_writes(s3_env, tmp_path, capsys):
    klines = tmp_path / "btc.parquet"
    real_klines("bybit_linear_BTCUSDT_5m", 600).write_parquet(klines)
    instrument = bybit_linear_instrument("BTCUSDT")
    uri = f"s3://{BUCKET}/ingested-{tmp_path.name}"
    fs = _s3()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)

    local = ingest_klines([klines], instrument, "5m", tmp_path / "local")
    remote = ingest_klines([klines], instrument, "5m", uri)
    again = ingest_klines([klines], instrument, "5m", uri)

    assert remote.catalog_path == uri and remote.bars_added == local.bars_added == 600
    assert not again.catalog_changed and again.bars_identical == 600
    copy = tmp_path / "copy"
    fs.get(uri.removeprefix("s3://"), str(copy), recursive=True)
    for relative in (
        "data/bar/BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL",
        "data/crypto_perpetual/BTCUSDT-LINEAR.BYBIT",
    ):
        assert _files(copy, relative) == _files(tmp_path / "local", relative) != {}, relative
    assert not fs.exists(f"{uri.removeprefix('s3://')}/.staging")
    assert catalog_coverage(uri) == catalog_coverage(tmp_path / "local")


def test_the_catalog_commands_write_and_list_an_s3_catalog(s3_env, tmp_path, capsys):
    klines = tmp_path / "btc.parquet"
    real_klines("bybit_linear_BTCUSDT_5m", 600).write_parquet(klines)
    uri = f"s3://{BUCKET}/cli-{tmp_path.name}"
    fs = _s3()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    market = ["--venue", "bybit-linear", "--symbol", "BTCUSDT"]
    funding = [str(REPO_ROOT / "data/funding/bybit_linear_BTCUSDT_funding.parquet"), *market]
    days = ["--start", "2025-01-01", "--end", "2025-01-02"]

    assert main(["catalog", "ingest", str(klines), *market, "--interval", "5m", "--catalog", uri]) == 0
    assert main(["catalog", "ingest-funding", *funding, *days, "--catalog", uri]) == 0
    assert main(["catalog", "ingest-funding", *funding, *days, "--catalog", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    assert main(["catalog", "list", "--catalog", uri]) == 0

    listing = capsys.readouterr().out
    assert "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL" in listing and "600" in listing
    on_s3 = read_funding_table(uri, "BTCUSDT-LINEAR.BYBIT")
    assert on_s3 is not None and on_s3.num_rows == 6  # 8-hourly, two days
    assert on_s3.equals(read_funding_table(tmp_path / "local", "BTCUSDT-LINEAR.BYBIT"))


@pytest.mark.parametrize(
    ("catalog", "named"),
    [
        ("ftpx://bucket/catalog", "unknown storage protocol 'ftpx'"),
        ("memory://catalog", "storage protocol 'memory'"),
        ("s3://Not_A_Bucket/catalog", "'Not_A_Bucket' is not an S3 bucket name"),
    ],
)
def test_a_bad_catalog_uri_is_a_config_error_naming_it(catalog, named, capsys):
    with pytest.raises(ConfigError, match="data.catalog") as error:
        load_config(BacktestConfig, DEFAULT_CONFIG, [f'data.catalog="{catalog}"'])
    assert named in str(error.value)

    code = main(
        ["backtest", "run", "--config", str(DEFAULT_CONFIG), "--set", f"data.catalog={catalog}", "--dry-run"]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert named in captured.err and "Traceback" not in captured.err + captured.out


def test_an_s3_catalog_that_is_not_there_is_named(s3_env):
    fs = _s3()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    config = load_config(BacktestConfig, DEFAULT_CONFIG, [f'data.catalog="s3://{BUCKET}/no-catalog-here"'])
    from qa_engine.config.build import check_catalog

    with pytest.raises(ConfigError, match=f"no catalog at 's3://{BUCKET}/no-catalog-here'"):
        check_catalog(config)


def test_an_unreachable_object_store_is_a_data_error_naming_the_catalog(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    config = load_config(BacktestConfig, DEFAULT_CONFIG, [f'data.catalog="s3://{BUCKET}/catalog"'])
    from qa_engine.config.build import check_catalog

    with pytest.raises(
        DataError, match=f"s3://{BUCKET}/catalog: the object store could not be read"
    ) as error:
        check_catalog(config)
    assert "AWS_ENDPOINT_URL" in str(error.value) and SECRET_KEY not in str(error.value)


@pytest.mark.timeout(600)
def test_sweep_results_on_s3_stream_there_and_a_rerun_resumes_from_them(s3_catalog, tmp_path):
    """The sweep folder itself on S3 (workers elsewhere write where the driver reads): one object per
    finished backtest; a second run finds them and runs nothing; the CLI uploads report.html and
    statistics.json beside them."""
    out = f"s3://{BUCKET}/sweeps/s3-test"
    first = _sweep(s3_catalog, out)
    fs = _s3()
    objects = {
        path: fs.info(path)["LastModified"] for path in fs.glob(f"{BUCKET}/sweeps/s3-test/results/*.parquet")
    }
    assert len(objects) == 4
    assert _sweep(s3_catalog, out) == first
    fs.invalidate_cache()
    again = {
        path: fs.info(path)["LastModified"] for path in fs.glob(f"{BUCKET}/sweeps/s3-test/results/*.parquet")
    }
    assert again == objects, "a finished backtest ran again"

    sweep_toml = tmp_path / "sweep.toml"
    sweep_toml.write_text(
        "\n".join(
            [
                'id = "s3-test"',
                f'base = "{DEFAULT_CONFIG}"',
                f'set = ["data.catalog={s3_catalog}", "data.end=2025-01-03T00:00:00Z"]',
                "[search]",
                'method = "grid"',
                "[[search.params]]",
                'path = "strategies.0.params.fast_ema_period"',
                'name = "fast"',
                "values = [6, 12]",
                "[[search.params]]",
                'path = "strategies.0.params.slow_ema_period"',
                'name = "slow"',
                "values = [26, 40]",
            ]
        )
        + "\n"
    )
    command = [sys.executable, "-m", "qa_engine.cli.main", "sweep", "--config", str(sweep_toml), "--out", out,
               "--workers", "1"]  # fmt: skip
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "4 backtests (0 failed)" in run.stdout
    fs.invalidate_cache()
    assert fs.exists(f"{BUCKET}/sweeps/s3-test/report.html") and fs.exists(
        f"{BUCKET}/sweeps/s3-test/statistics.json"
    )
    final = {
        path: fs.info(path)["LastModified"] for path in fs.glob(f"{BUCKET}/sweeps/s3-test/results/*.parquet")
    }
    assert final == objects
