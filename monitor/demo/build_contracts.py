"""Compile the demo contracts with solc-js (standard JSON) and write ``artifacts.json``.

Run ``python -m monitor.demo.build_contracts`` after editing a ``.sol`` file and commit the
result. The compiler version and settings are pinned, sources are fed with LF line endings
and the JSON is written with sorted keys, so the same sources always give the same file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from monitor.demo import node_modules_dir
from monitor.errors import ServiceError

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
ARTIFACTS_PATH = CONTRACTS_DIR / "artifacts.json"
CONTRACT_NAMES = ("Token", "Splitter", "Mixer")
SOLC_VERSION = "0.8.37"
SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}

# Reads standard JSON on stdin, prints solc's standard JSON answer (argv[1]: the solc package).
_NODE_SCRIPT = """
const solc = require(process.argv[1]);
if (solc.version().split("+")[0] !== process.argv[2]) {
  process.stderr.write("solc-js " + solc.version() + " found, " + process.argv[2] + " pinned\\n");
  process.exit(3);
}
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => { process.stdout.write(solc.compile(input)); });
"""


def standard_json_input() -> dict[str, Any]:
    """Build the solc standard-JSON input from the ``.sol`` files, with pinned settings."""
    sources = {}
    for name in CONTRACT_NAMES:
        text = (CONTRACTS_DIR / f"{name}.sol").read_text(encoding="utf-8")
        sources[f"{name}.sol"] = {"content": text.replace("\r\n", "\n")}
    return {"language": "Solidity", "sources": sources, "settings": SOLC_SETTINGS}


def compile_contracts() -> dict[str, dict[str, Any]]:
    """Compile the demo contracts and return ``{name: {"abi": [...], "bytecode": "0x..."}}``."""
    node = shutil.which("node")
    if node is None:
        raise ServiceError("node not found on PATH: install Node.js 20 to compile contracts")
    solc_dir = node_modules_dir() / "solc"
    if not (solc_dir / "package.json").is_file():
        raise ServiceError("solc-js missing: run `npm ci` (npm package solc)", path=str(solc_dir))
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [node, "-e", _NODE_SCRIPT, str(solc_dir), SOLC_VERSION],
        input=json.dumps(standard_json_input()),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise ServiceError(f"solc-js failed: {proc.stderr.strip()}", exit_code=proc.returncode)
    output = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ServiceError(
            "solc reported errors:\n" + "\n".join(e["formattedMessage"] for e in errors)
        )
    artifacts: dict[str, dict[str, Any]] = {}
    for name in CONTRACT_NAMES:
        contract = output["contracts"][f"{name}.sol"][name]
        artifacts[name] = {
            "abi": contract["abi"],
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        }
    return artifacts


def render_artifacts(artifacts: dict[str, dict[str, Any]]) -> str:
    """Serialize artifacts exactly as they are committed (sorted keys, 2-space indent)."""
    return json.dumps(artifacts, indent=2, sort_keys=True) + "\n"


def load_artifacts() -> dict[str, dict[str, Any]]:
    """Read the committed ``artifacts.json``."""
    data: dict[str, dict[str, Any]] = json.loads(ARTIFACTS_PATH.read_text(encoding="utf-8"))
    return data


def main() -> int:
    """Regenerate ``artifacts.json``; print what was written."""
    text = render_artifacts(compile_contracts())
    ARTIFACTS_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {ARTIFACTS_PATH} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
