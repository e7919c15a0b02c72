"""The workers' settings come from the environment, and a value that would stall them stops the
start-up with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from supporters import create_app
from supporters.config import ConfigError


def test_worker_settings_from_the_environment_and_unusable_values_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTERS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("SUPPORTERS_JOBS_POLL_SECONDS", "0.5")
    monkeypatch.setenv("SUPPORTERS_JOBS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SUPPORTERS_DEVELOPMENT_WORKER", "false")
    config = create_app().config
    assert (config["JOBS_POLL_SECONDS"], config["JOBS_MAX_ATTEMPTS"]) == (0.5, 3)
    assert config["DEVELOPMENT_WORKER"] is False

    monkeypatch.setenv("SUPPORTERS_JOBS_LEASE_SECONDS", "0")
    with pytest.raises(ConfigError, match="SUPPORTERS_JOBS_LEASE_SECONDS must be more than 0"):
        create_app()
    monkeypatch.setenv("SUPPORTERS_JOBS_LEASE_SECONDS", "five minutes")
    with pytest.raises(ConfigError, match="SUPPORTERS_JOBS_LEASE_SECONDS: could not convert"):
        create_app()
