"""Console sink: one readable line per alert on standard output, plus exact amount formatting."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Mapping
from typing import Self, TextIO

from monitor.errors import SinkError
from monitor.metrics import SINK_DELIVERIES, SINK_FAILURES, SINK_LATENCY
from monitor.records import Alert, Severity
from monitor.settings import SinkConfig
from monitor.sinks.base import Sink, register_sink

_MAX_SHOWN = 80  # characters of an unparseable amount echoed back
_MAX_DECIMALS = 255  # ERC-20 decimals is a uint8; anything larger is treated as unknown


def _group(digits: str) -> str:
    """Insert thousands separators into a string of decimal digits."""
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i:i + 3] for i in range(head, len(digits), 3)]
    return ",".join(parts)


def clean_text(value: str, limit: int = 256) -> str:
    """Make outside text safe for a one-line log: escape control/format chars, cap length."""
    out: list[str] = []
    for char in value[:limit]:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    if len(value) > limit:
        out.append("…")
    return "".join(out)


def format_amount(amount: int | str, decimals: int | None, symbol: str | None) -> str:
    """Render base units exactly, with integer arithmetic only (never a float).

    ``amount`` is an integer or a decimal string of one (``Alert.amount``). With known
    ``decimals`` the value is scaled, grouped by thousands and trailing zeros are dropped;
    with unknown decimals the raw base units are shown and labelled as such. This function
    never raises: text that is not an integer is echoed back (escaped, truncated) and marked.

    >>> format_amount(1_500_000_000_000_000_000, 18, "ETH")
    '1.5 ETH'
    >>> format_amount("2500000000", 6, "tUSD")
    '2,500 tUSD'
    >>> format_amount(1, 18, "ETH")
    '0.000000000000000001 ETH'
    >>> format_amount(1234567, None, "XYZ")
    '1,234,567 base units of XYZ'
    """
    suffix = f" {clean_text(symbol, 64)}" if symbol else ""
    if isinstance(amount, bool):
        return f"{amount!r} (not an integer amount){suffix}"
    if isinstance(amount, int):
        value = amount
    else:
        text = amount.strip()
        body = text[1:] if text[:1] in "+-" else text
        if not body or not (body.isascii() and body.isdigit()):
            return f"{clean_text(amount, _MAX_SHOWN)!r} (not an integer amount){suffix}"
        try:
            value = int(text)
        except ValueError:  # beyond Python's integer string limit (4300 digits)
            return f"{clean_text(amount, _MAX_SHOWN)!r} (not an integer amount){suffix}"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    try:
        if decimals is None or isinstance(decimals, bool) or not 0 <= decimals <= _MAX_DECIMALS:
            units = f"{sign}{_group(str(magnitude))} base units"
            return f"{units} of {clean_text(symbol, 64)}" if symbol else units
        whole, fraction = divmod(magnitude, 10 ** decimals)
        text = f"{sign}{_group(str(whole))}"
        if fraction:
            text += "." + str(fraction).rjust(decimals, "0").rstrip("0")
    except ValueError:  # an int passed in with more digits than str() may render
        return f"(amount of {value.bit_length()} bits, too large to show){suffix}"
    return text + suffix


def format_alert(alert: Alert) -> str:
    """One line describing ``alert``: rule, severity, where, what moved, and for which case."""
    amount = format_amount(alert.amount, alert.asset.decimals,
                           alert.asset.symbol or ("native" if alert.asset.kind == "native"
                                                  else alert.asset.address))
    watch = alert.watch
    parts = [
        f"[{alert.severity.upper()}]",
        clean_text(alert.rule, 64),
        f"status={alert.status}",
        f"chain={clean_text(alert.chain, 64)}",
        f"block={alert.block_number}",
        f"tx={clean_text(alert.tx_hash, 80)}",
        *([f"log={alert.log_index}"] if alert.log_index is not None else []),
        *([f"trace={list(alert.trace_address)}"] if alert.trace_address is not None else []),
        f"kind={alert.transfer_kind}",
        f"direction={alert.direction}",
        f"amount={amount!r}" if " " in amount else f"amount={amount}",
        f"from={clean_text(alert.from_address, 64)}",
        f"to={clean_text(alert.to_address, 64)}",
        f"watched={clean_text(watch.address, 64)}",
        f"case={clean_text(watch.case_id, 128)!r}",
        f"label={clean_text(watch.label)!r}",
        f"id={clean_text(alert.id, 80)}",
    ]
    return " ".join(parts)


@register_sink
class ConsoleSink(Sink):
    """Print one line per alert to standard output (or another text stream)."""

    type_name = "console"

    def __init__(self, name: str = "console", *, min_severity: Severity = "info",
                 stream: TextIO | None = None) -> None:
        super().__init__(name, min_severity=min_severity)
        self._stream = stream

    @classmethod
    def from_config(cls, config: SinkConfig, environ: Mapping[str, str]) -> Self:
        """Build from configuration (the console sink needs no secret)."""
        return cls(config.name, min_severity=config.min_severity)

    async def deliver(self, alert: Alert) -> None:
        """Write the alert's line and flush; raise SinkError if the stream cannot be written."""
        stream = self._stream if self._stream is not None else sys.stdout
        with SINK_LATENCY.labels(self.name).time():
            try:
                print(format_alert(alert), file=stream, flush=True)
            except (OSError, ValueError) as exc:  # closed pipe, closed file
                SINK_FAILURES.labels(self.name, "io").inc()
                raise SinkError(f"cannot write alert to the console: {exc}",
                                sink=self.name, alert=alert.id) from exc
        SINK_DELIVERIES.labels(self.name).inc()
