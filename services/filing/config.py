"""Settings of the filing service (environment variables prefixed `FILING_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class FilingSettings(ServiceSettings):
    """Filing service settings."""

    model_config = SettingsConfigDict(env_prefix="FILING_", extra="ignore")

    service_name: str = "filing"
    grpc_port: int = 50052
