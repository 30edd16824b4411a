"""Gateway settings (environment variables prefixed `GATEWAY_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

UPSTREAMS = ("identity", "filing", "catalogue", "settlement", "clearing")


class GatewaySettings(BaseSettings):
    """Where the gateway listens and where its upstream services are."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    """Address the HTTP server binds; `0.0.0.0` in containers."""
    http_port: int = 8080
    """HTTP port."""
    identity_target: str = "127.0.0.1:50051"
    """gRPC address of the identity service."""
    filing_target: str = "127.0.0.1:50052"
    """gRPC address of the filing service."""
    catalogue_target: str = "127.0.0.1:50053"
    """gRPC address of the catalogue service."""
    settlement_target: str = "127.0.0.1:50054"
    """gRPC address of the settlement service."""
    clearing_target: str = "127.0.0.1:50055"
    """gRPC address of the clearing service."""
    request_timeout_s: float = Field(default=3.0, gt=0)
    """Budget of one hospital request across every hop behind the gateway."""
    log_level: str = "INFO"
    """Root log level."""
    log_json: bool = True
    """JSON log lines (production); plain text when false."""

    def targets(self) -> dict[str, str]:
        """Upstream name -> gRPC address."""
        return {name: getattr(self, f"{name}_target") for name in UPSTREAMS}
