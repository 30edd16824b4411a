"""Catalogue service: treatment-place catalogues, designated institutions, item mappings."""
