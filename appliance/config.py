"""Settings: `config.toml` (every key documented there), then environment overrides.

Where the file comes from, first match wins: `--config PATH`, `$MEESHY_CONFIG`, `./config.toml`,
else built-in defaults (the same values as the shipped config.toml). Unknown keys and wrong types
are refused with the key's name, so a typo never silently falls back to a default.

Environment overrides (applied over the file; bad values are refused naming the variable):

    TRANSLATION_WORKERS  workers.count        ZMQ_PORT          server.zmq_port
    ZMQ_PUB_PORT         server.zmq_pub_port  API_PORT          server.api_port
    MEESHY_BIND_ADDRESS  server.bind_address  MEESHY_MODELS_DIR workers.models_dir
    MEESHY_RUN_DIR       server.run_dir       MEESHY_LOG_LEVEL  server.log_level
    MEESHY_STATE_DIR     server.state_dir     MEESHY_CACHE_URL  cache.persistent
    MEESHY_HTTP_TOKEN    security.http_token

Relative paths in the file are relative to the file's directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec

from ipc.tiers import TIERS



class ConfigError(ValueError):
    pass


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section):
    bind_address: str = "127.0.0.1"
    zmq_port: int = 5555
    zmq_pub_port: int = 5556
    api_port: int = 8000
    http_enabled: bool = True
    run_dir: str = ""
    state_dir: str = ""
    log_level: str = "INFO"


class LimitSettings(_Section):
    max_text_chars: int = 5000
    max_targets: int = 10
    max_request_bytes: int = 65536
    max_id_bytes: int = 256
    max_waiters_per_task: int = 8
    max_inflight_tasks: int = 10000
    max_inflight_bytes: int = 32 * 1024 * 1024
    recent_task_ids: int = 4096
    recent_task_bytes: int = 32 * 1024 * 1024
    task_timeout_s: float = 120.0
    max_attempts: int = 3
    max_coalesced_per_key: int = 64
    max_coalesced: int = 4096


class WorkerSettings(_Section):
    count: int = 0
    pin: bool = True
    models_dir: str = "models"
    tiers: dict[str, str | list[str]] = {}
    threads: int = 1
    queue_depth: int = 64
    batch_token_budget: int = 2048
    max_batch_size: int = 32
    heartbeat_interval_s: float = 1.0
    stall_timeout_s: float = 120.0
    startup_timeout_s: float = 600.0
    packed_weights: bool = True
    vocabulary_shortlist: bool = False
    entrypoint: str = "workers.process:main"
    runtime_factory: str = "workers.runtime:Runtime.load"


class RoutingSettings(_Section):
    basic_max_chars: int = 200
    basic_max_segments: int = 3
    medium_max_chars: int = 2000
    medium_max_segments: int = 20


class LanguageSettings(_Section):
    default_source: str = "en"
    min_detection_confidence: float = 0.5


class RespawnSettings(_Section):
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_crashes: int = 5
    crash_window_s: float = 60.0


class ShutdownSettings(_Section):
    drain_timeout_s: float = 30.0
    worker_exit_timeout_s: float = 5.0


class IpcSettings(_Section):
    internal_hwm: int = 10000
    edge_buffer_bytes: int = 256 * 1024 * 1024
    pub_buffer_bytes: int = 64 * 1024 * 1024
    linger_ms: int = 0
    edge_linger_ms: int = 500


class HttpSettings(_Section):
    max_connections: int = 256
    max_connections_per_peer: int = 64
    header_timeout_s: float = 10.0


class SecuritySettings(_Section):
    curve: bool = False
    server_secret_key: str = ""
    client_keys_dir: str = ""
    http_token: str = ""


class CacheSettings(_Section):
    enabled: bool = True
    entries: int = 10000
    max_bytes: int = 16 * 1024 * 1024
    max_value_bytes: int = 16 * 1024
    ttl_s: float = 7 * 24 * 3600.0
    persistent: str = "sqlite"
    persistent_max_entries: int = 200000
    retry_after_s: float = 30.0


class CompatSettings(_Section):
    enabled: bool = False
    meeshy_pull_port: int = 5557
    meeshy_pub_port: int = 5558
    bind_address: str = ""  # "" = server.bind_address
    pong_interval_s: float = 30.0
    max_frame_bytes: int = 16 * 1024 * 1024
    max_message_bytes: int = 32 * 1024 * 1024
    max_frames_per_message: int = 8
    max_connections: int = 32
    connection_buffer_bytes: int = 1024 * 1024
    handshake_timeout_s: float = 10.0
    max_text_chars: int = 10000
    retry_window_s: float = 300.0
    gateway_read_rate: float = 10.0
    max_delivery_delay_s: float = 140.0
    event_buffer_bytes: int = 16 * 1024 * 1024

    def address(self, server: ServerSettings) -> str:
        return self.bind_address or server.bind_address


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    workers: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    languages: LanguageSettings = msgspec.field(default_factory=LanguageSettings)
    respawn: RespawnSettings = msgspec.field(default_factory=RespawnSettings)
    shutdown: ShutdownSettings = msgspec.field(default_factory=ShutdownSettings)
    ipc: IpcSettings = msgspec.field(default_factory=IpcSettings)
    cache: CacheSettings = msgspec.field(default_factory=CacheSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    compat: CompatSettings = msgspec.field(default_factory=CompatSettings)
    source: str = ""  # the file these came from ("" for built-in defaults); not a TOML key

    def tier_models(self) -> dict[str, list[str]]:
        """[workers.tiers] as tier -> model names (a single name is a list of one)."""
        return {tier: [names] if isinstance(names, str) else list(names) for tier, names in self.workers.tiers.items()}

    def worker_count(self) -> int:
        return self.workers.count or len(usable_cpus())

    def state_dir(self, env: dict[str, str] | None = None) -> Path:
        """Where persistent state (the SQLite cache) lives: the setting, else systemd's
        $STATE_DIRECTORY, else $XDG_STATE_HOME/meeshy-appliance (~/.local/state/...)."""
        env = os.environ if env is None else env
        if self.server.state_dir:
            return Path(self.server.state_dir)
        systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
        if systemd:
            return Path(systemd)
        xdg = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        return Path(xdg) / "meeshy-appliance"

    def packed_weights_dir(self, env: dict[str, str] | None = None) -> str:
        """Where workers keep this host's packed copy of the weights ("" when turned off)."""
        return str(self.state_dir(env) / "packed-weights") if self.workers.packed_weights else ""

    def persistent_cache_url(self, env: dict[str, str] | None = None) -> str:
        """The persistent level for `ipc.persistent_cache.open_level`: "" (none), a redis://
        URL, or an absolute SQLite path ("sqlite" = <state_dir>/cache.sqlite3; a relative path
        is relative to the state directory)."""
        value = self.cache.persistent.strip()
        if not value or value.startswith(("redis://", "rediss://", "unix://")):
            return value
        if value == "sqlite":
            return str(self.state_dir(env) / "cache.sqlite3")
        path = Path(value.removeprefix("sqlite://"))
        return str(path if path.is_absolute() else self.state_dir(env) / path)


ENV_OVERRIDES: dict[str, tuple[str, str, type]] = {
    "TRANSLATION_WORKERS": ("workers", "count", int),
    "ZMQ_PORT": ("server", "zmq_port", int),
    "ZMQ_PUB_PORT": ("server", "zmq_pub_port", int),
    "API_PORT": ("server", "api_port", int),
    "MEESHY_BIND_ADDRESS": ("server", "bind_address", str),
    "MEESHY_MODELS_DIR": ("workers", "models_dir", str),
    "MEESHY_RUN_DIR": ("server", "run_dir", str),
    "MEESHY_LOG_LEVEL": ("server", "log_level", str),
    "MEESHY_STATE_DIR": ("server", "state_dir", str),
    "MEESHY_CACHE_URL": ("cache", "persistent", str),
    "MEESHY_HTTP_TOKEN": ("security", "http_token", str),
}


def usable_cpus() -> list[int]:
    """The cores this process may run on (its affinity mask), sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def find_config(explicit: str | None, env: dict[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get("MEESHY_CONFIG"):
        return Path(env["MEESHY_CONFIG"])
    local = Path("config.toml")
    return local if local.is_file() else None


def load(path: str | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    file = find_config(path, env)
    raw: dict = {}
    base = Path.cwd()
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        base = file.resolve().parent
    for var, (section, key, kind) in ENV_OVERRIDES.items():
        if var not in env:
            continue
        value = env[var]
        if kind is int:
            try:
                raw.setdefault(section, {})[key] = int(value)
            except ValueError:
                raise ConfigError(f"environment variable {var}={value!r} is not an integer") from None
        else:
            raw.setdefault(section, {})[key] = value
    if "source" in raw:
        raise ConfigError("unknown top-level key 'source'")
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        where = f"config file {file}" if file else "configuration"
        raise ConfigError(f"{where}: {exc}") from None
    models = Path(settings.workers.models_dir)
    run_dir = settings.server.run_dir
    state_dir = settings.server.state_dir
    sec = settings.security
    settings = msgspec.structs.replace(
        settings,
        source=str(file.resolve()) if file else "",
        workers=msgspec.structs.replace(
            settings.workers, models_dir=str(models if models.is_absolute() else base / models)
        ),
        server=msgspec.structs.replace(
            settings.server,
            run_dir=run_dir if not run_dir or os.path.isabs(run_dir) else str(base / run_dir),
            state_dir=state_dir if not state_dir or os.path.isabs(state_dir) else str(base / state_dir),
        ),
        security=msgspec.structs.replace(
            sec,
            server_secret_key=_relative_to(base, sec.server_secret_key),
            client_keys_dir=_relative_to(base, sec.client_keys_dir),
        ),
    )
    validate(settings)
    return settings


def _relative_to(base: Path, path: str) -> str:
    return path if not path or os.path.isabs(path) else str(base / path)


def is_loopback(address: str) -> bool:
    return address in ("localhost", "::1") or address.startswith("127.")


def validate(s: Settings) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    for name, port in (
        ("server.zmq_port (ZMQ_PORT)", s.server.zmq_port),
        ("server.zmq_pub_port (ZMQ_PUB_PORT)", s.server.zmq_pub_port),
        ("server.api_port (API_PORT)", s.server.api_port),
    ):
        need(0 <= port <= 65535, f"{name} must be a port number in 0..65535, got {port}")
    ports = [p for p in (s.server.zmq_port, s.server.zmq_pub_port, s.server.api_port) if p]
    if not s.server.http_enabled and s.server.api_port:
        ports.remove(s.server.api_port)
    need(len(ports) == len(set(ports)), f"server ports must differ, got {ports}")
    need(s.workers.count >= 0, f"workers.count (TRANSLATION_WORKERS) must be >= 0, got {s.workers.count}")
    need(s.workers.count <= 1024, f"workers.count (TRANSLATION_WORKERS) is at most 1024, got {s.workers.count}")
    need(s.workers.queue_depth >= 1, "workers.queue_depth must be >= 1")
    need(s.workers.threads >= 1, "workers.threads must be >= 1")
    need(s.workers.max_batch_size >= 1, "workers.max_batch_size must be >= 1")
    need(s.workers.batch_token_budget >= 1, "workers.batch_token_budget must be >= 1")
    need(s.workers.heartbeat_interval_s > 0, "workers.heartbeat_interval_s must be > 0")
    need(
        s.workers.stall_timeout_s > s.workers.heartbeat_interval_s,
        "workers.stall_timeout_s must exceed workers.heartbeat_interval_s",
    )
    for tier, names in s.tier_models().items():
        need(tier in TIERS, f"workers.tiers: unknown tier {tier!r} (one of {', '.join(TIERS)})")
        need(bool(names) and all(names), f"workers.tiers.{tier}: name at least one model")
    r = s.routing
    need(min(r.basic_max_chars, r.basic_max_segments, r.medium_max_chars, r.medium_max_segments) >= 0,
         "routing thresholds must be >= 0")
    need(0.0 <= s.languages.min_detection_confidence <= 1.0, "languages.min_detection_confidence must be in 0..1")
    need(bool(s.languages.default_source.strip()), "languages.default_source must be a language code")
    need(s.limits.max_text_chars >= 1, "limits.max_text_chars must be >= 1")
    need(s.limits.max_targets >= 1, "limits.max_targets must be >= 1")
    need(s.limits.max_request_bytes >= 256, "limits.max_request_bytes must be >= 256")
    need(s.limits.max_inflight_tasks >= 1, "limits.max_inflight_tasks must be >= 1")
    need(s.limits.max_inflight_bytes >= 1024 * 1024, "limits.max_inflight_bytes must be >= 1048576")
    need(s.limits.recent_task_ids >= 0, "limits.recent_task_ids must be >= 0")
    need(s.limits.recent_task_bytes >= 0, "limits.recent_task_bytes must be >= 0")
    need(s.limits.task_timeout_s > 0, "limits.task_timeout_s must be > 0")
    need(s.limits.max_attempts >= 1, "limits.max_attempts must be >= 1")
    need(min(s.limits.max_coalesced_per_key, s.limits.max_coalesced) >= 0, "limits.max_coalesced* must be >= 0")
    need(s.respawn.max_crashes >= 1, "respawn.max_crashes must be >= 1")
    need(s.respawn.backoff_initial_s >= 0, "respawn.backoff_initial_s must be >= 0")
    need(s.shutdown.drain_timeout_s >= 0, "shutdown.drain_timeout_s must be >= 0")
    need(s.ipc.internal_hwm >= 1, "ipc.internal_hwm must be >= 1 (0 would be unbounded)")
    for name, budget in (("edge_buffer_bytes", s.ipc.edge_buffer_bytes), ("pub_buffer_bytes", s.ipc.pub_buffer_bytes)):
        need(budget >= 1024 * 1024, f"ipc.{name} must be >= 1048576 (1 MiB)")
    need(16 <= s.limits.max_id_bytes <= 4096, "limits.max_id_bytes must be in 16..4096")
    need(s.limits.max_waiters_per_task >= 1, "limits.max_waiters_per_task must be >= 1")
    need(s.http.max_connections >= 1, "http.max_connections must be >= 1")
    need(s.http.max_connections_per_peer >= 1, "http.max_connections_per_peer must be >= 1")
    need(s.http.header_timeout_s > 0, "http.header_timeout_s must be > 0")
    sec = s.security
    if sec.curve:
        need(bool(sec.server_secret_key), "security.curve needs security.server_secret_key (meeshy-appliance keygen)")
        need(bool(sec.client_keys_dir), "security.curve needs security.client_keys_dir (the allowed clients' public keys)")
    need(
        not s.server.http_enabled or is_loopback(s.server.bind_address) or bool(sec.http_token),
        f"server.bind_address {s.server.bind_address!r} exposes the HTTP API beyond this host: set "
        "security.http_token (MEESHY_HTTP_TOKEN) or server.http_enabled = false",
    )
    need(
        s.ipc.internal_hwm >= s.workers.queue_depth + 2,
        "ipc.internal_hwm must exceed workers.queue_depth (a worker's credit must fit its pipe)",
    )
    need(s.ipc.linger_ms >= 0 and s.ipc.edge_linger_ms >= 0, "ipc linger values must be >= 0")
    need(s.cache.entries >= 1, "cache.entries must be >= 1")
    need(s.cache.max_bytes >= 4096, "cache.max_bytes must be >= 4096")
    need(s.cache.max_value_bytes >= 128, "cache.max_value_bytes must be >= 128")
    need(s.cache.ttl_s > 0, "cache.ttl_s must be > 0")
    need(s.cache.persistent_max_entries >= 1, "cache.persistent_max_entries must be >= 1")
    need(s.cache.retry_after_s > 0, "cache.retry_after_s must be > 0")
    _validate_compat(s, need)
    need(s.server.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "server.log_level must be DEBUG, INFO, WARNING or ERROR")


def _validate_compat(s: Settings, need) -> None:
    c = s.compat
    for name, port in (("compat.meeshy_pull_port", c.meeshy_pull_port), ("compat.meeshy_pub_port", c.meeshy_pub_port)):
        need(0 <= port <= 65535, f"{name} must be a port number in 0..65535, got {port}")
    need(c.pong_interval_s > 0, f"compat.pong_interval_s must be > 0, got {c.pong_interval_s}")
    need(c.max_frame_bytes >= 1, f"compat.max_frame_bytes must be >= 1, got {c.max_frame_bytes}")
    need(
        c.max_message_bytes >= c.max_frame_bytes,
        f"compat.max_message_bytes must be >= compat.max_frame_bytes ({c.max_frame_bytes}): a message "
        f"must be able to carry its largest frame, got {c.max_message_bytes}",
    )
    need(
        c.max_frames_per_message >= 3,
        f"compat.max_frames_per_message must be >= 3 (the gateway sends JSON, audio and a voice profile), "
        f"got {c.max_frames_per_message}",
    )
    need(c.max_connections >= 1, f"compat.max_connections must be >= 1, got {c.max_connections}")
    need(
        c.connection_buffer_bytes >= 65536,
        f"compat.connection_buffer_bytes must be >= 65536 (64 KiB), got {c.connection_buffer_bytes}",
    )
    need(c.handshake_timeout_s > 0, f"compat.handshake_timeout_s must be > 0, got {c.handshake_timeout_s}")
    need(c.max_text_chars >= 1, f"compat.max_text_chars must be >= 1, got {c.max_text_chars}")
    need(
        4 * c.max_text_chars + 1024 <= s.limits.max_request_bytes,
        f"compat.max_text_chars ({c.max_text_chars}) must fit limits.max_request_bytes "
        f"({s.limits.max_request_bytes}) at 4 UTF-8 bytes per character plus 1 KiB of other fields",
    )
    need(c.retry_window_s > 0, f"compat.retry_window_s must be > 0, got {c.retry_window_s}")
    need(c.gateway_read_rate > 0, f"compat.gateway_read_rate must be > 0, got {c.gateway_read_rate}")
    need(c.max_delivery_delay_s > 0, f"compat.max_delivery_delay_s must be > 0, got {c.max_delivery_delay_s}")
    need(c.event_buffer_bytes >= 65536, f"compat.event_buffer_bytes must be >= 65536 (64 KiB), got {c.event_buffer_bytes}")
    if not c.enabled:
        return
    ports = [p for p in (c.meeshy_pull_port, c.meeshy_pub_port) if p]
    need(len(ports) == len(set(ports)), f"compat.meeshy_pull_port and meeshy_pub_port must differ, got {ports}")
    if c.address(s.server) == s.server.bind_address:
        server = {s.server.zmq_port, s.server.zmq_pub_port} | ({s.server.api_port} if s.server.http_enabled else set())
        clash = sorted(set(ports) & (server - {0}))
        need(not clash, f"compat ports {clash} are already [server] ports on {s.server.bind_address}")
