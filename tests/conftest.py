"""Test-wide settings.

The suite runs what users run: float32 (JAX's default). A test that needs float64 asks
for the `x64` fixture (or enters `jax.enable_x64(True)` itself); silent broadcasting is an
error everywhere.
"""

import socket

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
  """64-bit JAX inside this test only (arrays created without a dtype are float64)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
  """A fresh TFDS_DATA_DIR under tmp_path, and any network connection fails the test."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_tfds"))

  def no_network(*args, **kwargs):
    raise AssertionError(f"a data test tried to reach the network: {args}")

  monkeypatch.setattr(socket.socket, "connect", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)
