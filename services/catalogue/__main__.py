"""`python -m services.catalogue`: run the catalogue service alone."""

from services.catalogue.config import CatalogueSettings
from services.catalogue.server import serve
from services.common.runtime import run_service

if __name__ == "__main__":
    run_service(CatalogueSettings(), serve)
