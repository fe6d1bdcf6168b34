"""Test-wide settings: float64 available, silent broadcasting is an error."""

import socket

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
  """A fresh TFDS_DATA_DIR under tmp_path, and any network connection fails the test."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_tfds"))

  def no_network(*args, **kwargs):
    raise AssertionError(f"a data test tried to reach the network: {args}")

  monkeypatch.setattr(socket.socket, "connect", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)
