"""One module per group of screens (by role)."""
