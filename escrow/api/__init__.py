"""The escrow's HTTP API (FastAPI): thin routes over escrow.vault, escrow.identity and escrow.reidentification."""
