"""Basic layers (being written)."""
