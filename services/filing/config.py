"""Settings of the filing service (environment variables prefixed `FILING_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class FilingSettings(ServiceSettings):
    """Filing service settings."""

    model_config = SettingsConfigDict(env_prefix="FILING_", extra="ignore")

    service_name: str = "filing"
    grpc_port: int = 50052
    lock_months: int = Field(default=6, ge=0)
    """Months after filing during which a long-term filing can be neither changed nor revoked."""
    lock_months_by_area: dict[str, int] = Field(default_factory=dict)
    """Per insured area overrides, JSON: `{"330200": 3}` (an area code or a province code)."""

    def lock_months_for(self, insuplc_admdvs: str) -> int:
        """The lock period an insured area set (its own, else its province's, else the default)."""
        for code in (insuplc_admdvs, insuplc_admdvs[:2] + "0000"):
            if code in self.lock_months_by_area:
                return self.lock_months_by_area[code]
        return self.lock_months
