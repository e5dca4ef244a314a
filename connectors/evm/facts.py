"""Facts about addresses from the node, as of the block before a transfer.

Rules such as *withdrawal from a mixer to a fresh address* and *peel chain* need to know whether
an address had any history before it received funds. chainwatch only observes the addresses it
tracks, so the worker asks the node: nonce, balance and code at ``block - 1``. The answers are
facts of the chain at a fixed height, so a replay gets the same answers (given an archive node
for old heights). A failed look-up is reported as unknown, never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.rpc import RpcPool
from monitor.errors import ConnectorError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AddressFact:
    """An address at the end of block ``height``: transactions sent, native balance, code."""

    address: str
    height: int
    nonce: int
    balance: int
    has_code: bool

    @property
    def had_history(self) -> bool:
        """Whether the address had sent, held or been a contract before (not fresh)."""
        return self.nonce > 0 or self.balance > 0 or self.has_code


def _int(value: object) -> int | None:
    if isinstance(value, str) and value.startswith("0x") and len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


class AddressFacts:
    """Batched, cached look-ups of :class:`AddressFact` through a chain's RPC pool."""

    def __init__(self, pool: RpcPool, cache_size: int = 100_000) -> None:
        self.pool = pool
        self._cache: dict[tuple[str, int], AddressFact | None] = {}
        self._cache_size = cache_size

    async def before_block(self, addresses: Sequence[str], block_number: int
                           ) -> dict[str, AddressFact | None]:
        """Facts as of the end of ``block_number - 1`` (``None`` where the node did not say)."""
        height = block_number - 1
        if height < 0:
            return {a: AddressFact(a, 0, 0, 0, False) for a in addresses}
        wanted = [a for a in dict.fromkeys(addresses) if (a, height) not in self._cache]
        if wanted:
            tag = hex(height)
            calls: list[tuple[str, list[object]]] = []
            for address in wanted:
                calls += [("eth_getTransactionCount", [address, tag]),
                          ("eth_getBalance", [address, tag]),
                          ("eth_getCode", [address, tag])]
            try:
                results = await self.pool.batch(calls, errors_as_none=True)
            except ConnectorError as exc:
                log.warning("address facts at block %d unavailable: %s", height, exc)
                results = [None] * len(calls)
            if len(self._cache) + len(wanted) > self._cache_size:
                self._cache.clear()
            for i, address in enumerate(wanted):
                nonce, balance, code = results[3 * i: 3 * i + 3]
                n, b = _int(nonce), _int(balance)
                fact = None
                if n is not None and b is not None and isinstance(code, str):
                    fact = AddressFact(address, height, n, b, code not in ("0x", "0x0", ""))
                self._cache[(address, height)] = fact
        return {a: self._cache.get((a, height)) for a in addresses}
