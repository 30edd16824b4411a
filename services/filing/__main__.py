"""`python -m services.filing`: run the filing service alone."""

from services.common.runtime import run_service
from services.filing.config import FilingSettings
from services.filing.server import serve

if __name__ == "__main__":
    run_service(FilingSettings(), serve)
