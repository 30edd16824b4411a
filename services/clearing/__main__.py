"""`python -m services.clearing`: run the clearing service alone."""

from services.clearing.config import ClearingSettings
from services.clearing.server import serve
from services.common.runtime import run_service

if __name__ == "__main__":
    run_service(ClearingSettings(), serve)
