"""All configuration in one frozen object, read from ``ESB_*`` environment variables.

Secrets are ``SecretStr`` so they never appear in logs or reprs. Validation happens at start-up and
names the offending variable, so a misconfigured replica fails fast instead of half-working.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from esb.errors import ConfigurationError

DEFAULT_DATA_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "esb"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESB_", frozen=True, extra="ignore")

    # --- identity & placement -------------------------------------------------------------
    mode: Literal["development", "production"] = Field(
        "production",
        description="production (the default) refuses weak or missing security settings; "
                    "`esb up`, `esb bench` and the test suite run in development")
    app_id: str = Field("esb", description="Faust app id; also the consumer-group prefix")
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="RocksDB tables, embedded services, dev secret")
    topic_prefix: str = Field("esb", pattern=r"^[a-z][a-z0-9_-]{0,30}$")

    # --- broker ---------------------------------------------------------------------------
    broker: str = Field("kafka://127.0.0.1:9092", description="kafka:// URL(s), comma-separated")
    broker_storage: str | None = Field(
        None, description="where the broker keeps topics, as `esb up` started it; /health says it")
    default_partitions: int = Field(6, ge=1, le=1024)
    internal_replication_factor: int = Field(1, ge=1, le=16)
    producer_linger_ms: int = Field(5, ge=0, le=1000)
    producer_max_batch_bytes: int = Field(1 << 20, ge=16384)
    router_enabled: bool = Field(True, description="run the ingress router in this replica")
    projection_enabled: bool = Field(True, description="run the archive projection in this replica")
    router_max_records: int = Field(5000, ge=1, description="records per ingress poll")
    fetch_max_wait_ms: int = Field(
        20, ge=1, le=5000, description="broker long-poll bound while records flow (the minimum)")
    fetch_idle_max_wait_ms: int = Field(
        1000, ge=1, le=5000,
        description="long-poll bound of a consumer whose partitions stay quiet: the wait grows "
                    "from ESB_FETCH_MAX_WAIT_MS to a tenth of the quiet time, up to this "
                    "(ADR 0021); at or below ESB_FETCH_MAX_WAIT_MS the wait is fixed")
    router_max_inflight_batches: int = Field(4, ge=1, le=64)
    ingress_shared_tenant: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="also route the shared <prefix>.ingress topics, all into this one tenant "
                    "(single-tenant installs); per-tenant ingress topics always")
    processor_source_idle_ms: int = Field(
        1000, ge=0, le=3_600_000,
        description="a caught-up source stops holding back a re-keyed job's stream time after")
    group_rebalance_timeout_ms: int = Field(10000, ge=1000)
    group_session_timeout_ms: int = Field(10000, ge=1000)
    group_heartbeat_interval_ms: int = Field(
        3000, ge=100,
        description="Kafka's default; capped at a third of ESB_GROUP_SESSION_TIMEOUT_MS. Every "
                    "group heartbeats at this rate even when idle (ADR 0021); a member notices "
                    "a rebalance at its next heartbeat")

    # --- web ------------------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="address the web server binds")
    advertised_url: str | None = Field(
        None, description="URL other replicas use to reach this one (table routing)")
    web_port: int = Field(8080, ge=0, le=65535)
    max_event_bytes: int = Field(1 << 20, ge=1024, description="largest accepted event payload")
    max_batch_events: int = Field(1000, ge=1)
    max_batch_bytes: int = Field(16 << 20, ge=65536,
                                 description="largest accepted batch request body (413 beyond)")
    max_json_depth: int = Field(64, ge=2, le=10000,
                                description="deepest accepted JSON nesting in a request body")
    max_ws_per_tenant: int = Field(32, ge=1, le=100000,
                                   description="open WebSocket connections per tenant per replica")
    monitor_interval_s: float = Field(
        15.0, ge=0.2, le=3600,
        description="how often consumer lag and the data directory's size are scanned (ADR 0020)")

    # --- auth -----------------------------------------------------------------------------
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 key; dev key generated if unset (development mode only)")
    jwt_public_key: str | None = Field(None, description="PEM public key (RS256 or ES256)")
    # roles and JWKS (ADR 0015): issuer and audience are required in production mode
    jwt_jwks_url: str | None = Field(
        None, description="IdP JWKS URL: RS256/ES256 keys by kid, refetched on rotation")
    jwt_jwks_refresh_s: float = Field(300.0, ge=1, le=86400,
                                      description="refetch the JWKS at least this often")
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    # --- state ----------------------------------------------------------------------------
    database_url: SecretStr | None = Field(None, description="PostgreSQL; embedded if unset")
    database_schema: str = Field("esb", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    database_pool_size: int = Field(10, ge=1, le=200)
    redis_url: SecretStr | None = Field(None, description="shared fast state; in-process if unset")
    idempotency_ttl_s: int = Field(86400, ge=60)

    # --- audit trail (ADR 0017) -----------------------------------------------------------
    audit_signing_key: SecretStr | None = Field(
        None, description="Ed25519 key (PEM, or base64 of the 32-byte seed) signing audit "
                          "checkpoints; generated in the data dir in development mode only")
    audit_checkpoint_interval_s: float = Field(
        60.0, ge=0.5, le=86400, description="how often a worker signs grown audit logs")

    # --- quotas per tenant: defaults; overrides per tenant via PUT /api/v1/quotas (ADR 0016) --
    quota_publish_events_per_s: float = Field(
        0, ge=0, le=1e9, description="events/s a tenant may publish, HTTP and Kafka ingress together; "
                             "0 = unlimited")
    quota_publish_bytes_per_s: float = Field(0, ge=0, le=1e12,
                                             description="payload bytes/s; 0 = unlimited")
    quota_burst_s: float = Field(1.0, gt=0, le=60,
                                 description="seconds of a publish rate a tenant may spend at once")
    quota_max_streams: int = Field(1000, ge=0, le=10**9, description="streams per tenant; 0 = unlimited")
    quota_max_partitions: int = Field(
        256, ge=0, le=10**9,
        description="partitions summed over a tenant's streams (each has four lane topics of that "
                    "many partitions; every one is a consumer-group member's work); 0 = unlimited")
    quota_max_processors: int = Field(200, ge=0, le=10**9, description="stream processors; 0 = unlimited")
    quota_max_patterns: int = Field(200, ge=0, le=10**9, description="CEP patterns; 0 = unlimited")
    quota_max_subscriptions: int = Field(1000, ge=0, le=10**9, description="subscriptions; 0 = unlimited")
    quota_max_schemas: int = Field(5000, ge=0, le=10**9, description="schema subjects; 0 = unlimited")
    quota_max_read_models: int = Field(200, ge=0, le=10**9, description="read models; 0 = unlimited")

    # --- encryption and transport security (ADR 0018) -----------------------------------
    master_key: SecretStr | None = Field(
        None, description="base64 of 32 bytes: wraps the per-data-subject keys of personal "
                          "fields; or ESB_MASTER_KEY_FILE; dev key in data_dir in development")
    master_key_file: Path | None = Field(None, description="file holding ESB_MASTER_KEY")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = \
        "PLAINTEXT"
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (mTLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="client private key (mTLS)")
    kafka_ssl_check_hostname: bool = True
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # --- observability (ADR 0019; tracing itself is configured by the standard OTEL_* vars) --
    log_format: Literal["json", "console"] = Field(
        "console", description="json: one JSON object per line (production); console: text")
    traces_file: Path | None = Field(
        None, description="with OTEL_TRACES_EXPORTER=console: append spans here as JSON lines")

    @field_validator("broker")
    @classmethod
    def _broker_urls(cls, value: str) -> str:
        for url in value.split(","):
            host = url.strip().removeprefix("kafka://")
            if ":" not in host:
                raise ValueError(f"broker URL {url!r} needs host:port")
        return value

    @field_validator("group_heartbeat_interval_ms")
    @classmethod
    def _heartbeat_within_session(cls, value: int, info: ValidationInfo) -> int:
        session = info.data.get("group_session_timeout_ms")
        return min(value, session // 3) if session else value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("ESB_JWT_SECRET must be at least 32 characters")
        return value

    # --- derived --------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> list[str]:
        return [u.strip().removeprefix("kafka://") for u in self.broker.split(",")]

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{s}" for s in self.bootstrap_servers)

    def jwt_signing_key(self) -> str:
        """The HS256 key: configured, or a per-data-dir development key created on first use."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "dev-jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Load once per process; a bad variable becomes a ConfigurationError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ESB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc
