"""The `--endpoints` option of the command-line tools: endpoints.json written by `medsettle up`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class EndpointsUnreadable(Exception):
    """endpoints.json is missing or not JSON."""


def add_endpoints_argument(parser: argparse.ArgumentParser) -> None:
    """Adds `--endpoints PATH` (default var/endpoints.json)."""
    parser.add_argument(
        "--endpoints",
        type=Path,
        default=Path("var/endpoints.json"),
        help="endpoints.json written by medsettle up (default var/endpoints.json)",
    )


def read_endpoints(path: Path) -> dict[str, str]:
    """Service name -> address, as `medsettle up` wrote them."""
    try:
        endpoints: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise EndpointsUnreadable(f"cannot read {path}: {error}") from None
    return endpoints
