"""Settings of the identity service (environment variables prefixed `IDENTITY_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class IdentitySettings(ServiceSettings):
    """Identity service settings."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    service_name: str = "identity"
    grpc_port: int = 50051
