"""Small validation helpers shared by the math core: names and shapes, checked up front."""

from collections.abc import Iterable

import chex
import jax
import jax.numpy as jnp
import numpy as np


def check_name(kind: str, name: str, valid: Iterable[str]) -> str:
  """Returns `name` if it is one of `valid`, else raises a ValueError listing them."""
  valid = tuple(valid)
  if name not in valid:
    raise ValueError(
        f"unknown {kind} {name!r}; expected one of: {', '.join(valid)}")
  return name


def check_scores_labels(scores, labels) -> None:
  """Asserts scores (N, C) with C >= 2 and integer labels (N,) in [0, C).

  The range is checked when the labels are concrete (an eager call); under `jit` they are
  traced values, and `labels_valid` marks the bad ones instead.
  """
  chex.assert_rank(scores, 2)
  n, c = scores.shape
  chex.assert_shape(labels, (n,))
  chex.assert_type(labels, int)
  if c < 2:
    raise ValueError(f"scores must have at least 2 classes, got shape {scores.shape}")
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    bad = np.flatnonzero((values < 0) | (values >= c))
    if bad.size:
      i = int(bad[0])
      raise ValueError(
          f"label {int(values[i])} (example {i}) is out of range for {c} classes; "
          f"labels must be in [0, {c - 1}] ({bad.size} of {n} are not)")


def labels_valid(labels_N, num_classes: int) -> jax.Array:
  """Boolean (N,): which labels lie in [0, num_classes)."""
  return (labels_N >= 0) & (labels_N < num_classes)


def check_dtype(dtype, what: str = "dtype") -> np.dtype:
  """Returns `dtype` if JAX can make arrays of it now, else raises a ValueError.

  Without 64-bit mode JAX silently truncates float64 to float32 (with a warning at most);
  lincv refuses instead, so that a float64 request never trains in float32.
  """
  d = np.dtype(dtype)
  if jax.dtypes.canonicalize_dtype(d) != d:
    raise ValueError(
        f"{what} {d.name} needs 64-bit JAX, which is off; enable it first with "
        "jax.config.update('jax_enable_x64', True), JAX_ENABLE_X64=1, or inside "
        "`with jax.enable_x64(True):`")
  return d


def as_float(x, like):
  """Casts a Python number or array hyperparameter to the dtype of `like`."""
  return jnp.asarray(x, dtype=jnp.result_type(like))
