"""Convolution and pooling layers (being written)."""
