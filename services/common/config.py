"""Settings shared by every service; each subclasses ServiceSettings with its own env prefix.

A service reads `<PREFIX>_GRPC_PORT`, `<PREFIX>_DATABASE_URL`, `<PREFIX>_REDIS_URL` and so on, where
the prefix is the service name (`IDENTITY_`, `FILING_`, ...). Settings are loaded once in
`__main__` and passed in; nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessSettings(BaseSettings):
    """What every process with its own database needs: the services and the gateway."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "medsettle"
    """Name used in logs, spans, the health service and the SQLite file name."""
    data_dir: Path = Path("var")
    """Where the embedded SQLite database lives when no database_url is given."""
    database_url: str = ""
    """SQLAlchemy async URL (`postgresql+asyncpg://...`); empty means SQLite in data_dir."""
    redis_url: str = ""
    """Redis URL (`redis://127.0.0.1:6379/0`); empty means the in-process cache."""
    redis_prefix: str = "medsettle"
    """Prefix of every Redis key this process writes, so tests and tenants never collide."""
    log_level: str = "INFO"
    """Root log level."""
    log_json: bool = True
    """JSON log lines (production); plain text when false."""
    exit_with_parent: bool = False
    """Stop (SIGTERM) when the process that started this one dies, however it dies: `medsettle
    up` sets it for its children. Off elsewhere, so a service started under nohup keeps running."""

    def sqlalchemy_url(self) -> str:
        """The database URL to use: the configured one, else the process's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.sqlite')}"


class ServiceSettings(ProcessSettings):
    """What every gRPC service needs to start."""

    grpc_host: str = "127.0.0.1"
    """Address the gRPC server binds; `0.0.0.0` in containers."""
    grpc_port: int = 0
    """gRPC port; 0 picks a free one (tests)."""
    default_timeout_s: float = Field(default=3.0, gt=0)
    """Deadline for an outbound call when no inbound deadline is being propagated."""
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    """How long in-flight RPCs may finish after SIGTERM."""
    max_concurrent_rpcs: int = Field(default=256, gt=0)
    """Calls beyond this are refused with RESOURCE_EXHAUSTED instead of queueing without bound."""
    metrics_port: int = Field(default=0, ge=0)
    """Port of the Prometheus endpoint (`/metrics` on grpc_host); 0 = not exposed."""
