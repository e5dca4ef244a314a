"""Configuration: a YAML file (chains, sinks, rules, watchlists) plus environment settings.

Two sources only. :class:`EnvSettings` reads ``CHAINWATCH_*`` variables (secrets as
``SecretStr``, masked whenever printed). :class:`ChainwatchConfig` is the validated YAML file;
a wrong key, a bad URL or an unknown reference stops start-up with a :class:`ConfigError` that
names the file and the key.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.egress import host_problem, url_problem
from monitor.errors import ConfigError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    # The value is not quoted back: node and sink URLs carry API keys in the path or query.
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise ValueError(f"must be a {'/'.join(schemes)} URL with a host and a valid port, "
                         f"got {redact_url(value)!r}") from None
    if parsed.scheme not in schemes or not parsed.hostname:
        raise ValueError(f"must be a {'/'.join(schemes)} URL with a host, "
                         f"got {redact_url(value)!r}")
    return value


def _http_url(value: str) -> str:
    return _check_url(value, ("http", "https"))


def _ws_url(value: str) -> str:
    return _check_url(value, ("ws", "wss"))


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(_Strict):
    """One chain the connector follows."""

    name: str = Field(pattern=NAME_PATTERN)
    chain_id: int = Field(gt=0)
    rpc_urls: list[HttpUrl] = Field(min_length=1)
    ws_url: WsUrl | None = None
    confirmations: int = Field(default=12, ge=0, le=10_000)
    start_block: int | Literal["latest"] = "latest"
    traces: Literal["none", "parity", "geth"] = "none"
    batch_size: int = Field(default=50, ge=1, le=1000)
    poll_interval_seconds: float = Field(default=2.0, gt=0, le=600)
    native_symbol: str = "ETH"
    native_decimals: int = Field(default=18, ge=0, le=77)
    token_metadata: bool = True
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_retries: int = Field(default=8, ge=0, le=100)
    reorg_window: int = Field(default=128, ge=8, le=10_000)
    address_facts: bool = True  # ask the node whether counterparties had history (freshness)
    # Depth at which an alert turns from provisional to confirmed; default: ``confirmations``
    # (the connector publishes blocks that deep already, so alerts are confirmed at once).
    alert_confirmations: int | None = Field(default=None, ge=0, le=10_000)
    alert_state_max: int = Field(default=500, ge=10, le=100_000)
    explorer_url: HttpUrl | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Address the connector's /metrics binds to; a non-loopback one (0.0.0.0 in a container)
    # exposes the metrics, which hold no secrets, to that network.
    metrics_host: str = "127.0.0.1"

    @field_validator("start_block")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("start_block must be >= 0 or 'latest'")
        return value

    @field_validator("metrics_host")
    @classmethod
    def _ip_literal(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("metrics_host must be an IPv4 or IPv6 address literal such as "
                             "127.0.0.1, 0.0.0.0 or :: (no host name, no port); "
                             f"got {value!r}") from None
        return value


BlockCompression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
"""Kafka producer compression of block messages (``kafka.compression``)."""


def kafka_codec(compression: str) -> str | None:
    """The producer's ``compression_type`` for a ``kafka.compression`` value ("none": None)."""
    return None if compression == "none" else compression


class KafkaConfig(_Strict):
    """Where the broker is; empty bootstrap means: start the embedded local broker."""

    bootstrap: str | None = None
    topic_prefix: str = Field(default="chainwatch.", pattern=r"^[A-Za-z0-9._-]*$")
    partitions: int = Field(default=1, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=7)
    # Replicas that must have a write before it is acknowledged (producers use acks=all);
    # with replication_factor 3, 2 keeps writing through the loss of one broker.
    min_insync_replicas: int = Field(default=1, ge=1, le=7)
    # A connector instance that stops heartbeating loses the active role after this long.
    connector_session_timeout_seconds: float = Field(default=10.0, ge=3.0, le=300.0)
    # How connectors compress block messages (Kafka producer compression, per record batch).
    # zstd: block topics about 8x smaller, the worker's consumer thread reads less; "none"
    # for brokers or tools that cannot read it.
    compression: BlockCompression = "zstd"

    @model_validator(mode="after")
    def _min_insync_within_replicas(self) -> KafkaConfig:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min_insync_replicas ({self.min_insync_replicas}) must not exceed "
                             f"replication_factor ({self.replication_factor}): no write could "
                             "ever be acknowledged")
        return self


SeverityName = Literal["info", "low", "medium", "high", "critical"]
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
_HEADER_SAFE = r"^[^\r\n]+$"  # no CR/LF: these values end up in SMTP headers
_MAILBOX = r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$"  # a bare address, e.g. ``unit@agency.example``

SINK_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "console": (),
    "webhook": ("url", "secret_env"),
    "slack": ("url_env",),
    "discord": ("url_env",),
    "telegram": ("bot_token_env", "chat_id", "parse_mode", "api_url"),
    "email": ("smtp_host", "smtp_port", "smtp_tls", "smtp_username", "smtp_password_env",
              "mail_from", "mail_to"),
    "kafka": ("topic", "bootstrap"),
}
"""The type-specific keys each sink type takes (any other type refuses them)."""
_TYPE_SPECIFIC_FIELDS = frozenset(key for keys in SINK_TYPE_FIELDS.values() for key in keys)

_REQUIRED_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "webhook": (("url", ""),
                ("secret_env", " (the environment variable holding its HMAC secret)")),
    "slack": (("url_env", " (the environment variable holding its incoming-webhook URL)"),),
    "discord": (("url_env", " (the environment variable holding its webhook URL)"),),
    "telegram": (("bot_token_env", " (the environment variable holding the bot token)"),
                 ("chat_id", " (a numeric chat id or an @channel name)")),
    "email": (("smtp_host", ""), ("mail_from", ""), ("mail_to", " (one address or more)")),
    "kafka": (("topic", " (the downstream topic alerts are written to)"),),
}


class SinkFilters(_Strict):
    """Which alerts a sink takes: an alert must match every non-empty list (empty = all)."""

    severities: list[SeverityName] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    cases: list[str] = Field(default_factory=list)
    chains: list[str] = Field(default_factory=list)


class SinkConfig(_Strict):
    """A subscriber that alerts are delivered to, with its filters and type-specific keys.

    Secrets (webhook secrets, Slack/Discord webhook URLs, bot tokens, SMTP passwords) are never
    written in the YAML file: the ``*_env`` keys name the environment variables holding them.
    """

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["console", "webhook", "slack", "discord", "telegram", "email", "kafka"]
    min_severity: SeverityName = "info"
    filters: SinkFilters = SinkFilters()
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    max_attempts: int = Field(default=6, ge=1, le=50)
    # webhook
    url: HttpUrl | None = None
    secret_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    # slack, discord
    url_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    # telegram
    bot_token_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    chat_id: int | Annotated[str, Field(pattern=r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
                             ] | None = None
    parse_mode: Literal["HTML", "MarkdownV2"] = "HTML"
    api_url: HttpUrl = "https://api.telegram.org"
    # email
    smtp_host: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.:\[\]_-]{1,253}$")
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = Field(default=None, pattern=_HEADER_SAFE, max_length=256)
    smtp_password_env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    mail_from: str | None = Field(default=None, pattern=_MAILBOX, max_length=254)
    mail_to: list[Annotated[str, Field(pattern=_MAILBOX, max_length=254)]] = Field(
        default_factory=list, max_length=100)
    # kafka
    topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    bootstrap: str | None = Field(default=None, min_length=1)  # default: the worker's broker

    @property
    def _a_type(self) -> str:
        """``a slack`` / ``an email``: the type with its article, for messages."""
        return f"{'an' if self.type[0] in 'aeiou' else 'a'} {self.type}"

    @model_validator(mode="after")
    def _type_specific_keys(self) -> SinkConfig:
        """Every required key of the type is present; keys of other types are refused."""
        foreign = sorted((self.model_fields_set & _TYPE_SPECIFIC_FIELDS)
                         - set(SINK_TYPE_FIELDS[self.type]))
        if foreign:
            takes = ", ".join(SINK_TYPE_FIELDS[self.type]) or "no type-specific keys"
            raise ValueError(f"{', '.join(repr(k) for k in foreign)} not used by "
                             f"{self._a_type} sink (it takes: {takes})")
        for key, hint in _REQUIRED_FIELDS.get(self.type, ()):
            if getattr(self, key) in (None, [], ""):
                raise ValueError(f"{self._a_type} sink needs {key!r}{hint}")
        if self.smtp_password_env and not self.smtp_username:
            raise ValueError("'smtp_password_env' needs 'smtp_username' too")
        return self


class RuleConfig(_Strict):
    """A rule switched on, with its parameters, optionally scoped to categories or cases."""

    name: str
    severity: Literal["info", "low", "medium", "high", "critical"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list)  # watch-entry categories; empty = all
    cooldown_seconds: int = Field(default=0, ge=0, le=30 * 86_400)  # fold repeats (block time)
    cases: list[str] = Field(default_factory=list)  # case ids; empty = all


class ListConfig(_Strict):
    """An address list file (sanctions or labels) loaded by every worker at start."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    path: str
    format: Literal["ofac-txt", "ofac-json", "ofac-entities-csv", "etherscan-labels-csv",
                    "forta-csv", "lazarus-txt", "label-json"]
    category: Literal["sanctioned", "mixer", "bridge", "exchange", "exchange-deposit", "scam",
                      "heist", "phishing", "malicious-contract", "other"]
    source: str = Field(min_length=1)
    published: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    version: str | None = None


class TaintConfig(_Strict):
    """Follow-the-money: how far and how wide taint spreads from a case's watched addresses."""

    enabled: bool = True
    max_hops: int = Field(default=8, ge=1, le=64)
    min_amounts: dict[str, int] = Field(default_factory=lambda: {"native": 10**15})
    default_min_amount: int = Field(default=1, ge=0)
    max_addresses_per_origin: int = Field(default=200, ge=1, le=100_000)
    model: Literal["poison", "haircut"] = "poison"
    stop_categories: list[str] = Field(default_factory=lambda: [
        "exchange", "exchange-deposit", "bridge", "mixer"])
    # Do not taint contracts (code at the block before): routers, pools and other busy
    # contracts would otherwise spread taint to everyone who trades through them.
    stop_at_contracts: bool = False


class WatchlistFile(_Strict):
    """A file of watch entries loaded at start (CSV with a header, or JSON lines)."""

    path: str
    case_id: str | None = None
    chain: str | None = None


class ApiConfig(_Strict):
    """The worker's HTTP API (health, watchlist, alerts, metrics)."""

    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=1, le=65535)
    # Alerts the API's index holds (latest event per id, 2-5 KB each); the oldest are dropped.
    alert_index_max: int = Field(default=50_000, ge=100, le=5_000_000)


class WorkerConfig(_Strict):
    """Where a worker keeps its Faust tables (``screening``, ``delivered``): memory or RocksDB."""

    # memory: rebuilt from the changelog topics at every start. rocksdb: RocksDB files (through
    # rocksdict) under state_dir that remember the changelog offset they hold, so a restarted
    # worker reads only the changelog's tail. See deploy/README.md, "State stores".
    store: Literal["memory", "rocksdb"] = "memory"
    # A table recovery (after a start or a rebalance) that reads nothing for this long makes
    # the worker exit with code 75, to be started again (see monitor/watchdog.py).
    recovery_stall_seconds: float = Field(default=60.0, ge=10.0, le=3600.0)
    # Faust's data directory (tables in <state_dir>/v1/tables), one per worker process; relative
    # to the working directory. Default: $CHAINWATCH_STATE_DIR/worker/<app_id>.
    state_dir: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("state_dir")
    @classmethod
    def _plain_path(cls, value: str | None) -> str | None:
        # faust formats the path with str.format (``{conf}``): braces would be taken as fields
        if value is not None and any(c in value for c in "{}\0\n\r"):
            raise ValueError("must be a plain directory path (no braces, NUL or line breaks), "
                             f"got {value!r}")
        return value


class SinksPolicy(_Strict):
    """Where sinks may send alerts (see :mod:`monitor.egress`); checked at start and connect."""

    allow_http: bool = False  # plain http also to hosts other than loopback
    deny_private_networks: bool = False  # refuse non-public addresses, as resolved when sending

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` may not receive alerts under this policy, or None."""
        return url_problem(url, allow_http=self.allow_http,
                           deny_private_networks=self.deny_private_networks)

    def check_sink(self, index: int, sink: SinkConfig) -> None:
        """Raise ValueError naming ``sinks[index].<key>`` for a URL or host the policy refuses."""
        for key in ("url", "api_url"):
            value = getattr(sink, key)
            if value is None or key not in SINK_TYPE_FIELDS[sink.type]:
                continue
            problem = self.url_problem(value)
            if problem:
                raise ValueError(f"sinks[{index}].{key}: {problem}")
        if sink.type == "email" and sink.smtp_host:
            problem = host_problem(sink.smtp_host.strip("[]"),
                                   deny_private_networks=self.deny_private_networks)
            if problem:
                raise ValueError(f"sinks[{index}].smtp_host: {problem}")


class ChainwatchConfig(_Strict):
    """The whole YAML configuration file."""

    chains: list[ChainConfig] = Field(min_length=1)
    kafka: KafkaConfig = KafkaConfig()
    sinks: list[SinkConfig] = Field(default_factory=lambda: [SinkConfig(name="console",
                                                                         type="console")])
    rules: list[RuleConfig] = Field(default_factory=lambda: [RuleConfig(name="watched-address")])
    watchlists: list[WatchlistFile] = Field(default_factory=list)
    lists: list[ListConfig] = Field(default_factory=list)
    taint: TaintConfig = TaintConfig()
    api: ApiConfig = ApiConfig()
    sinks_policy: SinksPolicy = SinksPolicy()
    worker: WorkerConfig = WorkerConfig()
    app_id: str = Field(default="chainwatch", pattern=r"^[A-Za-z0-9._-]+$")

    @model_validator(mode="after")
    def _references(self) -> ChainwatchConfig:
        for kind, names in (("chains", [c.name for c in self.chains]),
                            ("sinks", [s.name for s in self.sinks])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} name(s): {', '.join(dupes)}")
        chain_names = {c.name for c in self.chains}
        for i, wl in enumerate(self.watchlists):
            if wl.chain is not None and wl.chain not in chain_names:
                raise ValueError(f"watchlists[{i}].chain: unknown chain {wl.chain!r}; "
                                 f"configured chains: {', '.join(sorted(chain_names))}")
        for i, sink in enumerate(self.sinks):
            unknown = [c for c in sink.filters.chains if c not in chain_names]
            if unknown:
                raise ValueError(f"sinks[{i}].filters.chains: unknown chain {unknown[0]!r}; "
                                 f"configured chains: {', '.join(sorted(chain_names))}")
            self.sinks_policy.check_sink(i, sink)
        return self

    def chain(self, name: str) -> ChainConfig:
        """Return the chain named ``name`` or raise ConfigError listing the known ones."""
        for chain in self.chains:
            if chain.name == name:
                return chain
        known = ", ".join(c.name for c in self.chains)
        raise ConfigError(f"unknown chain {name!r}; configured chains: {known}")


class EnvSettings(BaseSettings):
    """Settings and secrets from ``CHAINWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CHAINWATCH_", frozen=True, extra="ignore")

    config: Path | None = None
    kafka_bootstrap: str | None = None
    state_dir: Path = Path(".chainwatch")
    api_token: SecretStr | None = None  # read-write
    api_read_token: SecretStr | None = None  # read-only
    log_level: str = "info"


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(data: Any, source: str) -> ChainwatchConfig:
    """Validate already-parsed YAML data; errors name ``source`` and the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with at least 'chains'")
    try:
        return ChainwatchConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            lines.append(f"  {source}: {_format_location(tuple(err['loc']))}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def load_config(path: str | os.PathLike[str]) -> ChainwatchConfig:
    """Read and validate a YAML configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte offset {exc.start})") from None
    return load_config_text(text, str(file))


MAX_CONFIG_CHARS = 1_000_000  # a configuration file is a few kB; refuse anything absurd
MAX_CONFIG_NODES = 100_000  # values after expanding YAML aliases ("billion laughs" guard)


def _bounded_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond MAX_CONFIG_NODES."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        pending: list[yaml.Node] = [root]
        seen = 0
        while pending:
            node = pending.pop()
            seen += 1
            if seen > MAX_CONFIG_NODES:
                raise ConfigError(f"{source}: more than {MAX_CONFIG_NODES:,} values once YAML "
                                  "aliases are expanded; not a chainwatch configuration")
            if isinstance(node, yaml.SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    pending += (key, value)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def load_config_text(text: str, source: str) -> ChainwatchConfig:
    """Parse and validate YAML ``text``; errors name ``source`` and the line or key."""
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_CHARS:,} characters; "
                          "not a chainwatch configuration")
    try:
        data = _bounded_yaml(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    return parse_config(data, source)


def redact_url(url: str) -> str:
    """Keep scheme, host and port of a URL; hide the path and query, where API keys live."""
    try:
        parsed = urlparse(url)
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return "<invalid URL>"
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    hidden = "/***" if (parsed.path not in ("", "/") or parsed.query or parsed.fragment) else ""
    return f"{parsed.scheme}://{host}{port}{hidden}"


def dump_config(config: ChainwatchConfig, env: EnvSettings) -> str:
    """Render the effective configuration as YAML with every secret masked.

    Endpoint URLs keep only scheme, host and port: node providers put API keys in the path.
    """
    data = config.model_dump(mode="json")
    for chain in data["chains"]:
        chain["rpc_urls"] = [redact_url(u) for u in chain["rpc_urls"]]
        if chain.get("ws_url"):
            chain["ws_url"] = redact_url(chain["ws_url"])
    for sink in data["sinks"]:
        if sink.get("url"):
            sink["url"] = redact_url(sink["url"])
    env_data = {
        k: ("**********" if isinstance(v, SecretStr) else (str(v) if v is not None else None))
        for k, v in env
    }
    return yaml.safe_dump({"config": data, "environment": env_data}, sort_keys=False)
