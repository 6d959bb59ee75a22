"""The fault schedule on its own: seeded draws, every-N schedules, one-shot faults, the TOML loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_engine.errors import ConfigError
from qa_engine.live.venue.faults import FaultConfig
from qa_engine.live.venue.faults import FaultInjection
from qa_engine.live.venue.faults import FaultSchedule
from qa_engine.live.venue.faults import load_fault_config


def _drops(config: FaultConfig, bars: int) -> list[int]:
    schedule = FaultSchedule(config)
    return [index for index in range(1, bars + 1) if schedule.after_bar(index).drop is not None]


def test_venue_faults_drop_probability_is_reproducible_from_the_seed() -> None:
    config = FaultConfig(seed=7, drop_probability=0.2, drop_stream="private")
    first, second = _drops(config, 200), _drops(config, 200)
    assert first == second
    assert 20 <= len(first) <= 60  # about 40 of 200
    assert _drops(FaultConfig(seed=8, drop_probability=0.2), 200) != first


def test_venue_faults_every_n_bars_drops_and_restarts_and_counts_them() -> None:
    schedule = FaultSchedule(FaultConfig(drop_every_bars=3, restart_every_bars=4, drop_stream="public"))
    outcomes = [schedule.after_bar(index) for index in range(1, 13)]
    assert [i for i, o in enumerate(outcomes, 1) if o.drop == "public"] == [3, 6, 9]  # 12: restart wins
    assert [i for i, o in enumerate(outcomes, 1) if o.restart] == [4, 8, 12]
    assert dict(schedule.counts) == {"drop_public": 3, "restart": 3}


def test_venue_faults_one_shots_are_consumed_in_order() -> None:
    schedule = FaultSchedule()
    schedule.arm(FaultInjection(rate_limit=2, insufficient_balance=1, reject=1, reject_code=110017))
    assert [schedule.rate_limited() for _ in range(3)] == [True, True, False]
    assert [schedule.order_rejection() for _ in range(3)] == [
        (110007, "ab not enough for new order"),
        (110017, "Reduce-only rule not satisfied"),
        None,
    ]
    assert dict(schedule.counts) == {"rate_limit": 2, "insufficient_balance": 1, "reject_110017": 1}


def test_venue_faults_rate_limit_every_n_requests() -> None:
    schedule = FaultSchedule(FaultConfig(rate_limit_every_requests=3))
    assert [schedule.rate_limited() for _ in range(6)] == [False, False, True, False, False, True]


def test_venue_faults_toml_file_loads_under_a_faults_table(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text("[faults]\nseed = 3\ndrop_every_bars = 10\nack_delay_ms = 250\nduplicate_acks = true\n")
    assert load_fault_config(path) == FaultConfig(
        seed=3, drop_every_bars=10, ack_delay_ms=250, duplicate_acks=True
    )


def test_venue_faults_toml_with_an_unknown_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text("drop_evry_bars = 10\n")
    with pytest.raises(ConfigError, match=r"faults\.toml: drop_evry_bars: Extra inputs are not permitted"):
        load_fault_config(path)
