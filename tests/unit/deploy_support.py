"""Helpers for the deploy/ checks: what the chainwatch CLI and configuration really accept."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.settings import ChainwatchConfig, EnvSettings, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

IMAGE_ONLY_VARIABLES = frozenset({"CHAINWATCH_HEALTH_URL"})
"""Read by the image's HEALTHCHECK only, never by chainwatch itself."""


def env_settings_variables() -> set[str]:
    """The ``CHAINWATCH_*`` variables :class:`EnvSettings` reads."""
    prefix = EnvSettings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in EnvSettings.model_fields}


def sink_secret_variables(config: ChainwatchConfig) -> set[str]:
    """The variables a configuration's sinks name in their ``*_env`` keys."""
    names = set()
    for sink in config.sinks:
        for key in ("secret_env", "url_env", "bot_token_env", "smtp_password_env"):
            value = getattr(sink, key)
            if value:
                names.add(value)
    return names


def app_variables(*configs: ChainwatchConfig) -> set[str]:
    """Every variable a chainwatch process with one of ``configs`` reads."""
    names = env_settings_variables()
    for config in configs:
        names |= sink_secret_variables(config)
    return names


def assert_cli_accepts(args: list[str], where: str) -> None:
    """The ``chainwatch`` command line knows the command and options in ``args``."""
    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, f"{where}: `chainwatch {' '.join(args)}` is not a valid " \
                                  f"command line:\n{result.output}"


def assert_config_checks(path: Path, secrets: set[str]) -> ChainwatchConfig:
    """``chainwatch config check`` accepts ``path`` with placeholder values for ``secrets``."""
    env = {name: "placeholder-for-config-check" for name in secrets}
    result = CliRunner().invoke(cli, ["config", "check", str(path)], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, f"chainwatch config check {path}:\n{result.output}"
    return load_config(path)


def required_tool(name: str) -> str:
    """Path of a command-line tool; a failure in CI when missing, else a skip."""
    venv_tool = Path(sys.executable).parent / name
    path = str(venv_tool) if venv_tool.exists() else shutil.which(name)
    if path is None:
        message = f"{name} is not installed (`make install` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def required_module(name: str) -> object:
    """Import a test dependency; a failure in CI when missing, else a skip."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package for {name!r} is not installed (`make install` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
