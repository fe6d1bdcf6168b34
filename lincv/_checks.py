"""Small validation helpers shared by the math core: names and shapes, checked up front."""

from collections.abc import Iterable

import chex
import jax.numpy as jnp


def check_name(kind: str, name: str, valid: Iterable[str]) -> str:
  """Returns `name` if it is one of `valid`, else raises a ValueError listing them."""
  valid = tuple(valid)
  if name not in valid:
    raise ValueError(
        f"unknown {kind} {name!r}; expected one of: {', '.join(valid)}")
  return name


def check_scores_labels(scores, labels) -> None:
  """Asserts scores (N, C) with C >= 2 and integer labels (N,)."""
  chex.assert_rank(scores, 2)
  n, c = scores.shape
  chex.assert_shape(labels, (n,))
  chex.assert_type(labels, int)
  if c < 2:
    raise ValueError(f"scores must have at least 2 classes, got shape {scores.shape}")




def as_float(x, like):
  """Casts a Python number or array hyperparameter to the dtype of `like`."""
  return jnp.asarray(x, dtype=jnp.result_type(like))
