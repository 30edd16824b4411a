"""`python -m gateway`: run the HTTP gateway."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.log import configure_logging
from services.common.runtime import freeze_startup_objects
from services.common.supervision import exit_with_parent
from services.common.tracing import install_tracer_provider, make_tracer_provider


def main() -> None:
    """Serve the gateway until SIGTERM/SIGINT (uvicorn drains open requests first)."""
    settings = GatewaySettings()
    if settings.exit_with_parent:
        exit_with_parent()
    configure_logging(settings.service_name, settings.log_level, json_lines=settings.log_json)
    provider = make_tracer_provider(settings.service_name)
    install_tracer_provider(provider)
    app = create_app(settings, provider)
    freeze_startup_objects()
    try:
        uvicorn.run(
            app,
            host=settings.http_host,
            port=settings.http_port,
            loop="uvloop",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
