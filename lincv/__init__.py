"""lincv: linear classifiers for computer vision in JAX."""

__version__ = "0.1.0"
