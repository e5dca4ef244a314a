"""Demo and test tooling: small contracts, a devnet driver for anvil and a scripted scenario.

Node tooling (solc-js, the anvil binary) comes from a ``node_modules`` directory: the one named
by ``CHAINWATCH_NODE_MODULES`` if that variable is set, else ``node_modules`` in the repository
root.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.errors import ServiceError

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES_ENV = "CHAINWATCH_NODE_MODULES"
ANVIL_RELATIVE_PATH = Path("@foundry-rs/anvil-linux-amd64/bin/anvil")


def node_modules_dir() -> Path:
    """Return the ``node_modules`` directory to use, or raise ``ServiceError`` saying why not."""
    override = os.environ.get(NODE_MODULES_ENV)
    candidate = Path(override) if override else REPO_ROOT / "node_modules"
    if not candidate.is_dir():
        source = f"${NODE_MODULES_ENV}" if override else "the repository root"
        raise ServiceError(
            f"node_modules not found in {source}: run `npm ci` in the repository root "
            f"or set {NODE_MODULES_ENV} to a node_modules directory",
            path=str(candidate),
        )
    return candidate


def anvil_binary() -> Path:
    """Return the anvil executable shipped by the npm package ``@foundry-rs/anvil``."""
    path = node_modules_dir() / ANVIL_RELATIVE_PATH
    if not os.access(path, os.X_OK):
        raise ServiceError("anvil binary missing or not executable", path=str(path))
    return path
