"""Filing service: cross-province filings (备案) and their validity."""
