"""The ``chainwatch`` command line, run as a subprocess against the real broker and anvil.

Every command is started as ``python -m monitor.cli --config FILE ...`` with
``CHAINWATCH_KAFKA_BOOTSTRAP`` pointing at the session's Kafka broker; each test gets its own
topic prefix and consumer group (``unique_prefix``), so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from monitor.demo.devnet import DevnetDriver
from monitor.devservices import free_ports
from tests.integration.harness import API_TOKEN, Pipeline

pytestmark = pytest.mark.integration

ETHER = 10**18
CHAIN = "devnet"
T = TypeVar("T")


# --- helpers ----------------------------------------------------------------------------------

def write_config(tmp_path: Path, prefix: str, rpc_url: str = "http://127.0.0.1:8545",
                 name: str = "chainwatch.yaml", **extra: Any) -> Path:
    """A valid configuration with this test's app id and topic prefix (``extra`` on top)."""
    config: dict[str, Any] = {
        "app_id": prefix.rstrip("."),
        "kafka": {"topic_prefix": prefix},
        "chains": [{"name": CHAIN, "chain_id": 31337, "rpc_urls": [rpc_url],
                    "confirmations": 0, "start_block": 0, "traces": "parity",
                    "poll_interval_seconds": 0.2}],
    }
    config.update(extra)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cli_env(bootstrap: str, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: the session broker, no inherited chainwatch settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINWATCH_")}
    env.update(CHAINWATCH_KAFKA_BOOTSTRAP=bootstrap, CHAINWATCH_LOG_LEVEL="info", **extra)
    return env


def run_cli(config: Path, *args: str, bootstrap: str, env: dict[str, str] | None = None,
            timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """Run ``chainwatch --config CONFIG ARGS...`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "--config", str(config), *args],
        env=env or cli_env(bootstrap), capture_output=True, text=True, timeout=timeout,
        check=False)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Everything a failed CLI run printed, for assertion messages."""
    return (f"exit code {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}")


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int | None = None,
                         *needles: str) -> str:
    """The run failed without a traceback; return the stderr line naming every needle."""
    assert result.returncode != 0, describe(result)
    if code is not None:
        assert result.returncode == code, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = [line for line in result.stderr.splitlines() if all(n in line for n in needles)]
    assert lines, f"no stderr line names {needles!r}\n{describe(result)}"
    return lines[0]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON lines, ignoring blank ones."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for(condition: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.3, diagnostics: Callable[[], str] = lambda: "") -> T:
    """Poll ``condition`` until it returns a truthy value; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                 f"{diagnostics()}")
        time.sleep(interval)


def http_get(url: str, token: str | None = None) -> tuple[int, Any]:
    """GET a JSON endpoint; (0, None) when nothing listens yet."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def pids_running(needle: str) -> dict[int, str]:
    """Live processes whose command line contains ``needle`` (read from /proc): pid -> argv."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited meanwhile
        command = " ".join(a.decode(errors="replace") for a in argv if a)
        if needle in command and state != "Z":
            found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- config check -----------------------------------------------------------------------------

def test_config_check_prints_the_configuration_with_secrets_masked(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str) -> None:
    token = f"api-token-{uuid.uuid4().hex}"
    read_token = f"read-token-{uuid.uuid4().hex}"
    hook_secret = f"hook-secret-{uuid.uuid4().hex}"
    config = write_config(
        tmp_path, unique_prefix,
        sinks=[{"name": "console", "type": "console"},
               {"name": "hook", "type": "webhook", "url": "https://receiver.example/hook",
                "secret_env": "CHAINWATCH_TEST_HOOK_SECRET"}],
        rules=[{"name": "watched-address", "severity": "high"}])
    env = cli_env(kafka_bootstrap, CHAINWATCH_API_TOKEN=token,
                  CHAINWATCH_API_READ_TOKEN=read_token, CHAINWATCH_TEST_HOOK_SECRET=hook_secret)

    result = run_cli(config, "config", "check", str(config), bootstrap=kafka_bootstrap,
                     env=env)

    assert result.returncode == 0, describe(result)
    for secret in (token, read_token, hook_secret):
        assert secret not in result.stdout and secret not in result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["environment"]["api_token"] == "**********"
    assert printed["environment"]["api_read_token"] == "**********"
    assert printed["config"]["app_id"] == unique_prefix.rstrip(".")
    assert printed["config"]["kafka"]["topic_prefix"] == unique_prefix
    assert printed["config"]["chains"][0]["name"] == CHAIN
    assert [s["name"] for s in printed["config"]["sinks"]] == ["console", "hook"]
    assert f"{config}: OK" in result.stderr
    assert "Traceback" not in result.stderr


_CHAIN = {"name": CHAIN, "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"]}
_INVALID: dict[str, tuple[str, tuple[str, ...]]] = {
    "typo-key": (yaml.safe_dump({"chains": [{**_CHAIN, "confirmatons": 3}]}),
                 ("chains[0].confirmatons", "Extra inputs are not permitted")),
    "bad-url": (yaml.safe_dump({"chains": [{**_CHAIN, "rpc_urls": ["ftp://node.example"]}]}),
                ("chains[0].rpc_urls[0]", "ftp://node.example")),
    "invalid-yaml": ("chains:\n  - name: devnet\n    rpc_urls: [http://a\n  bad: {\n",
                     ("invalid YAML at line",)),
    "unknown-rule": (yaml.safe_dump({"chains": [_CHAIN], "rules": [
                         {"name": "watched-address"}, {"name": "no-such-rule"}]}),
                     ("rules[1].name", "no-such-rule")),
    "webhook-secret-unset": (yaml.safe_dump({"chains": [_CHAIN], "sinks": [
                                 {"name": "console", "type": "console"},
                                 {"name": "hook", "type": "webhook",
                                  "url": "https://receiver.example/hook",
                                  "secret_env": "CHAINWATCH_TEST_UNSET_SECRET"}]}),
                             ("sinks[1].secret_env", "CHAINWATCH_TEST_UNSET_SECRET")),
}


@pytest.mark.parametrize("case", sorted(_INVALID))
def test_config_check_rejects_an_invalid_file_with_one_clear_line(
        tmp_path: Path, kafka_bootstrap: str, case: str) -> None:
    text, needles = _INVALID[case]
    config = tmp_path / f"{case}.yaml"
    config.write_text(text)
    env = cli_env(kafka_bootstrap)
    env.pop("CHAINWATCH_TEST_UNSET_SECRET", None)

    result = run_cli(config, "config", "check", str(config), bootstrap=kafka_bootstrap,
                     env=env)

    assert_clean_failure(result, 2, str(config), *needles)
    assert result.stdout == "", "nothing may be printed as if the file were valid"


# --- watch add / list / remove ----------------------------------------------------------------

def test_watch_add_list_and_remove(tmp_path: Path, kafka_bootstrap: str,
                                   unique_prefix: str) -> None:
    config = write_config(tmp_path, unique_prefix)
    seized = "0x" + "ab" * 20
    mule_checksummed = "0x52908400098527886E0F7030069857D2E4169EE7"
    mule = mule_checksummed.lower()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(config, *args, bootstrap=kafka_bootstrap)

    added = cli("watch", "add", seized, "--chain", CHAIN, "--case", "CASE-1",
                "--label", "wallet seized by court order")
    assert added.returncode == 0, describe(added)
    assert f"watching {seized} on {CHAIN} for case CASE-1" in added.stdout
    added = cli("watch", "add", mule_checksummed, "--chain", CHAIN, "--case", "CASE-2",
                "--label", "suspected money mule", "--category", "suspect")
    assert added.returncode == 0, describe(added)

    listed = cli("watch", "list")
    assert listed.returncode == 0, describe(listed)
    entries = json_lines(listed.stdout)
    assert {(e["chain"], e["address"], e["case_id"]) for e in entries} == {
        (CHAIN, seized, "CASE-1"), (CHAIN, mule, "CASE-2")}
    by_case = {e["case_id"]: e for e in entries}
    assert by_case["CASE-1"]["label"] == "wallet seized by court order"
    assert by_case["CASE-1"].get("category", "seized") == "seized"  # defaults are omitted
    assert by_case["CASE-2"]["category"] == "suspect"
    assert {e["source"] for e in entries} == {"cli"}

    only_two = cli("watch", "list", "--case", "CASE-2")
    assert only_two.returncode == 0, describe(only_two)
    assert [(e["address"], e["case_id"]) for e in json_lines(only_two.stdout)] == [
        (mule, "CASE-2")]
    other_chain = cli("watch", "list", "--chain", "ethereum")
    assert other_chain.returncode == 0 and other_chain.stdout == "", describe(other_chain)

    removed = cli("watch", "remove", seized, "--chain", CHAIN, "--case", "CASE-1")
    assert removed.returncode == 0, describe(removed)
    assert f"removed {seized}" in removed.stdout
    listed = cli("watch", "list")
    assert listed.returncode == 0, describe(listed)
    assert [(e["address"], e["case_id"]) for e in json_lines(listed.stdout)] == [
        (mule, "CASE-2")]


def test_watch_add_rejects_bad_input_with_exit_code_2(tmp_path: Path, kafka_bootstrap: str,
                                                      unique_prefix: str) -> None:
    config = write_config(tmp_path, unique_prefix)

    bad_address = run_cli(config, "watch", "add", "0x12345", "--chain", CHAIN, "--case", "C-1",
                          bootstrap=kafka_bootstrap)
    line = assert_clean_failure(bad_address, 2, "address", "0x12345")
    assert line.startswith("chainwatch:"), line

    unknown_chain = run_cli(config, "watch", "add", "0x" + "cd" * 20, "--chain", "nochain",
                            "--case", "C-1", bootstrap=kafka_bootstrap)
    assert_clean_failure(unknown_chain, 2, "unknown chain", "nochain", CHAIN)

    listed = run_cli(config, "watch", "list", bootstrap=kafka_bootstrap)
    assert listed.returncode == 0 and listed.stdout == "", describe(listed)


# --- watch import -----------------------------------------------------------------------------

def test_watch_import_keeps_good_rows_and_reports_bad_ones(
        tmp_path: Path, kafka_bootstrap: str, unique_prefix: str) -> None:
    config = write_config(tmp_path, unique_prefix)
    good = ["0x" + f"{i:02x}" * 20 for i in (1, 2, 3)]
    csv_file = tmp_path / "case.csv"
    csv_file.write_text(
        "address,chain,case_id,label,category\n"       # line 1
        f"{good[0]},devnet,CASE-9,seized wallet,\n"      # line 2: good
        "0xnot-an-address,devnet,CASE-9,,\n"             # line 3: bad address
        f"{good[1]},devnet,,no case id,\n"               # line 4: no case id, no default
        f"{good[2]},devnet,CASE-9,mule,suspect\n"        # line 5: good
        f"0x{'44' * 20},devnet,CASE-9,bell\x07here,\n"   # line 6: control character
        f"{good[1]},devnet,CASE-\x1b[31m,,\n"            # line 7: control character
        f"0x{'55' * 20},ethereum,CASE-9,,\n")            # line 8: chain not configured

    result = run_cli(config, "watch", "import", str(csv_file), bootstrap=kafka_bootstrap)

    assert result.returncode == 1, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert f"imported 2 entries from {csv_file}; 5 row error(s)" in result.stdout
    row_error = re.compile(rf"^{re.escape(str(csv_file))}:(\d+): (\w+): ")
    errors = [m for m in map(row_error.match, result.stderr.splitlines()) if m]
    assert [m.groups() for m in errors] == [
        ("3", "address"), ("4", "case_id"), ("6", "label"), ("7", "case_id")], result.stderr
    assert_clean_failure(result, 1, str(csv_file), "unknown chain 'ethereum'", "0x" + "55" * 20)
    assert "0xnot-an-address" in errors[0].string
    assert "control characters" in errors[2].string
    assert "control characters" in errors[3].string
    assert "\x07" not in result.stderr and "\x1b" not in result.stderr

    txt_file = tmp_path / "more.txt"
    txt_file.write_text(f"# handed over by the court\n{good[1]}\n\n{good[0]}  # also seized\n")
    result = run_cli(config, "watch", "import", str(txt_file), "--chain", CHAIN,
                     "--case", "CASE-10", bootstrap=kafka_bootstrap)
    assert result.returncode == 0, describe(result)
    assert f"imported 2 entries from {txt_file}; 0 row error(s)" in result.stdout

    listed = run_cli(config, "watch", "list", bootstrap=kafka_bootstrap)
    assert listed.returncode == 0, describe(listed)
    entries = {(e["address"], e["case_id"]): e for e in json_lines(listed.stdout)}
    assert set(entries) == {(good[0], "CASE-9"), (good[2], "CASE-9"),
                            (good[1], "CASE-10"), (good[0], "CASE-10")}
    assert entries[good[2], "CASE-9"]["category"] == "suspect"
    assert entries[good[2], "CASE-9"]["label"] == "mule"
    assert entries[good[0], "CASE-9"]["label"] == "seized wallet"
    assert entries[good[1], "CASE-10"]["source"] == str(txt_file)


# --- alerts -----------------------------------------------------------------------------------

def test_alerts_prints_the_pipelines_alert(tmp_path: Path, kafka_bootstrap: str, anvil: Any,
                                           unique_prefix: str) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized = driver.new_wallet("seized")
    receiver = driver.new_wallet("receiver")
    driver.fund(seized, 10 * ETHER)
    pipeline = Pipeline(tmp_path / "pipeline", kafka_bootstrap, unique_prefix, anvil.http_url)
    try:
        pipeline.start("worker")
        pipeline.start("connector")
        pipeline.wait_ready()
        pipeline.watch([{"chain": CHAIN, "address": seized, "case_id": "CASE-3"}])
        sent = driver.send_native(seized, receiver, 3 * ETHER // 2)

        def alerts_json() -> list[dict[str, Any]] | None:
            result = run_cli(pipeline.config_path, "alerts", "--limit", "5", "--json",
                             bootstrap=kafka_bootstrap)
            assert result.returncode == 0, describe(result)
            return json_lines(result.stdout) or None

        printed = wait_for(alerts_json, 60, "the alert in `chainwatch alerts --json`",
                           interval=0.5, diagnostics=pipeline.logs)
        assert len(printed) == 1, printed
        alert = printed[0]
        assert alert["tx_hash"] == sent.tx_hash
        assert alert["transfer_id"] == sent.record_id(CHAIN)
        assert (alert["from"], alert["to"], alert["amount"]) == (seized, receiver,
                                                                 str(3 * ETHER // 2))
        assert (alert["rule"], alert["direction"]) == ("watched-address", "out")
        assert alert["watch"]["case_id"] == "CASE-3"

        human = run_cli(pipeline.config_path, "alerts", "--limit", "5",
                        bootstrap=kafka_bootstrap)
        assert human.returncode == 0, describe(human)
        lines = [line for line in human.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, describe(human)
        assert lines[0].startswith("[HIGH] watched-address ")
        assert f"tx={sent.tx_hash}" in lines[0]
        assert "amount='1.5 ETH'" in lines[0] and "direction=out" in lines[0]
    finally:
        pipeline.stop()


# --- up ---------------------------------------------------------------------------------------

@pytest.fixture()
def up_process(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Holds the ``chainwatch up`` process a test starts; kills what is left of it afterwards."""
    held: dict[str, Any] = {}
    yield held
    proc: subprocess.Popen[bytes] | None = held.get("proc")
    needle: str | None = held.get("needle")
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if needle:
        for pid in pids_running(needle):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_up_runs_the_pipeline_restarts_a_dead_worker_and_stops_cleanly(
        tmp_path: Path, kafka_bootstrap: str, anvil: Any, unique_prefix: str,
        up_process: dict[str, Any]) -> None:
    driver = DevnetDriver(anvil.http_url)
    seized = driver.new_wallet("seized-up")
    receiver = driver.new_wallet("receiver-up")
    driver.fund(seized, 10 * ETHER)
    workdir = tmp_path / f"up-{uuid.uuid4().hex[:8]}"  # unique in every process's argv
    workdir.mkdir()
    (workdir / "seized.csv").write_text(f"address,label\n{seized},seized by court order\n")
    api_port, metrics_port = free_ports(2)
    config = write_config(
        workdir, unique_prefix, anvil.http_url,
        chains=[{"name": CHAIN, "chain_id": 31337, "rpc_urls": [anvil.http_url],
                 "confirmations": 0, "start_block": 0, "traces": "parity",
                 "poll_interval_seconds": 0.2, "metrics_port": metrics_port}],
        watchlists=[{"path": "seized.csv", "case_id": "CASE-UP", "chain": CHAIN}],
        api={"host": "127.0.0.1", "port": api_port})
    api = f"http://127.0.0.1:{api_port}"
    log_path = workdir / "up.log"
    up_process["needle"] = str(config)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "--config", str(config), "up"],
            env=cli_env(kafka_bootstrap, CHAINWATCH_API_TOKEN=API_TOKEN),
            stdout=log, stderr=subprocess.STDOUT)
    up_process["proc"] = proc

    def logs() -> str:
        return f"===== up.log\n{log_path.read_text(errors='replace')[-8000:]}"

    def healthy() -> bool:
        assert proc.poll() is None, f"`up` exited with {proc.returncode}\n{logs()}"
        return http_get(f"{api}/health")[0] == 200

    def children() -> dict[int, str]:
        return {pid: argv for pid, argv in pids_running(str(config)).items()
                if pid != proc.pid}

    def worker_pid() -> int | None:
        workers = [pid for pid, argv in children().items() if argv.endswith(" worker")]
        return workers[0] if len(workers) == 1 else None

    wait_for(healthy, 60, "GET /health to answer 200", diagnostics=logs)
    status, listed = http_get(f"{api}/watchlist", API_TOKEN)
    assert status == 200, listed
    assert [(e["chain"], e["address"], e["case_id"], e["label"]) for e in listed["entries"]] \
        == [(CHAIN, seized, "CASE-UP", "seized by court order")]
    assert http_get(f"{api}/watchlist")[0] == 401, "reads need the token once one is set"

    sent = driver.send_native(seized, receiver, ETHER)

    def recent_alert() -> dict[str, Any] | None:
        status, body = http_get(f"{api}/alerts/recent", API_TOKEN)
        if status != 200:
            return None
        return next((a for a in body["alerts"] if a["tx_hash"] == sent.tx_hash), None)

    alert = wait_for(recent_alert, 45, "the alert in GET /alerts/recent", diagnostics=logs)
    assert alert["watch"]["case_id"] == "CASE-UP"
    assert (alert["from"], alert["to"], alert["direction"]) == (seized, receiver, "out")

    started = children()
    assert sorted(argv.split(" --config ", 1)[1].split(" ", 1)[1] for argv in started.values()) \
        == [f"connector --chain {CHAIN}", "worker"], started
    first_worker = worker_pid()
    assert first_worker is not None, started
    os.kill(first_worker, signal.SIGKILL)
    wait_for(lambda: not alive(first_worker), 10, "the killed worker to be reaped")
    new_worker = wait_for(lambda: (pid := worker_pid()) != first_worker and pid, 30,
                          "`up` to start a new worker", diagnostics=logs)
    wait_for(healthy, 60, "GET /health to answer 200 from the restarted worker",
             diagnostics=logs)
    assert "worker exited with code -9; restarting" in log_path.read_text(errors="replace")

    spawned = {**started, **children()}
    assert new_worker in spawned
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`up` did not exit within 30 s of SIGTERM\n{logs()}") from None
    assert code == 0, f"`up` exited with {code}\n{logs()}"
    assert "Traceback" not in log_path.read_text(errors="replace").split("worker exited")[-1]
    left = [pid for pid in spawned if alive(pid)]
    assert not left, f"children left behind: {[spawned[p] for p in left]}"
    assert not pids_running(str(config)), "a process of this configuration is still running"
