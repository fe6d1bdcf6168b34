"""Score functions: a linear map and a two-layer ReLU net, with their initialisers.

Parameters are plain dicts of arrays, so they stack, vmap and serialise freely:

  linear: {"W": (D, C), "b": (C,)}                       s = x W + b
  mlp:    {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
          s = max(0, x W1 + b1) W2 + b2
"""

import chex
import jax
import jax.numpy as jnp

from lincv import seeds
from lincv._checks import (as_float, check_array, check_count, check_dtype, check_key,
                           check_name, check_nonnegative, wide_ints_as_float32)

MODELS = ("linear", "mlp")
# chex numbers the arrays of one assertion; these say which is which.
_INPUTS_LINEAR = "inputs 0, 1, 2: x_NxD (N, D), W (D, C), b (C,)"
_INPUTS_HIDDEN = "inputs 0, 1, 2: x_NxD (N, D), W1 (D, H), b1 (H,)"


def _check_arrays(**arrays) -> None:
  for name, x in arrays.items():
    check_array(name, x)


def _weights(params, names: tuple[str, ...], model: str) -> list:
  """The arrays `names` of `params`, each a floating array, or a one-line error: a missing
  key raised a bare KeyError, and integer weights scored in integer arithmetic (int8 hidden
  units of 100 + 100 wrapped to -56, and the ReLU made every score 0)."""
  missing = [k for k in names if k not in params] if hasattr(params, "keys") else names
  if missing:
    got = ", ".join(map(str, params.keys())) if hasattr(params, "keys") else type(params).__name__
    raise ValueError(f"{model} params need the keys {', '.join(names)}; got {got}")
  for name in names:
    check_array(name, params[name])
    dtype = jnp.result_type(params[name])
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"{model} params must be floating, got {name} of dtype {dtype}; make "
                       "them with lincv.scores.init, or cast them to float32")
  return [params[name] for name in names]


def linear(params, x_NxD: jax.Array) -> jax.Array:
  """Class scores of a linear classifier, `s = x W + b`.

  Args:
    params: {"W": (D, C), "b": (C,)}.
    x_NxD: inputs, one row per example.

  Returns:
    scores (N, C).
  """
  w_DxC, b_C = _weights(params, ("W", "b"), "linear")
  _check_arrays(x_NxD=x_NxD)
  x_NxD = wide_ints_as_float32(x_NxD)     # int64 pixels past 2**31 would wrap
  chex.assert_rank([x_NxD, w_DxC, b_C], [2, 2, 1], custom_message=_INPUTS_LINEAR)
  d, c = w_DxC.shape
  chex.assert_shape(x_NxD, (None, d), custom_message="x_NxD (N, D) must match W (D, C)")
  chex.assert_shape(b_C, (c,), custom_message="b must be (C,) for W (D, C)")
  return x_NxD @ w_DxC + b_C[None, :]


def mlp_hidden(params, x_NxD: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Pre-activation and ReLU activation of the hidden layer, `a = x W1 + b1`, `h = max(0, a)`."""
  w1_DxH, b1_H = _weights(params, ("W1", "b1"), "mlp")
  _check_arrays(x_NxD=x_NxD)
  x_NxD = wide_ints_as_float32(x_NxD)
  chex.assert_rank([x_NxD, w1_DxH, b1_H], [2, 2, 1], custom_message=_INPUTS_HIDDEN)
  d, h = w1_DxH.shape
  chex.assert_shape(x_NxD, (None, d), custom_message="x_NxD (N, D) must match W1 (D, H)")
  chex.assert_shape(b1_H, (h,), custom_message="b1 must be (H,) for W1 (D, H)")
  a_NxH = x_NxD @ w1_DxH + b1_H[None, :]
  return a_NxH, jnp.maximum(a_NxH, 0)


def mlp(params, x_NxD: jax.Array) -> jax.Array:
  """Class scores of a two-layer net, `s = max(0, x W1 + b1) W2 + b2`.

  Args:
    params: {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}.
    x_NxD: inputs, one row per example.

  Returns:
    scores (N, C).
  """
  _, h_NxH = mlp_hidden(params, x_NxD)
  w2_HxC, b2_C = _weights(params, ("W2", "b2"), "mlp")
  chex.assert_rank([w2_HxC, b2_C], [2, 1], custom_message="inputs 0, 1: W2 (H, C), b2 (C,)")
  chex.assert_shape(w2_HxC, (h_NxH.shape[1], None),
                    custom_message="W2 must be (H, C) for W1 (D, H)")
  chex.assert_shape(b2_C, (w2_HxC.shape[1],), custom_message="b2 must be (C,) for W2 (H, C)")
  return h_NxH @ w2_HxC + b2_C[None, :]


def init_linear(key: jax.Array, num_features: int, num_classes: int, *,
                scale: float = 1e-3, dtype=jnp.float32) -> dict:
  """Small random weights `W ~ scale * N(0, 1)` and zero biases, as in the lecture notes."""
  dtype = check_dtype(dtype)
  check_key(key)
  check_count("num_features", num_features)
  check_count("num_classes", num_classes)
  check_nonnegative("scale", scale)
  # A NumPy float64 scale would otherwise promote W to float64 under 64-bit JAX; 1e39
  # made every weight infinite in float32.
  scale = as_float(scale, jnp.zeros((), dtype), "scale")
  w = (scale * seeds.normal(key, (num_features, num_classes), dtype)).astype(dtype)
  return {"W": w, "b": jnp.zeros((num_classes,), dtype)}


def init_mlp(key: jax.Array, num_features: int, hidden: int, num_classes: int, *,
             dtype=jnp.float32) -> dict:
  """He-normal weights (`N(0, 2 / fan_in)`, suited to ReLU) and zero biases."""
  dtype = check_dtype(dtype)
  check_key(key)
  for name, count in (("num_features", num_features), ("hidden", hidden),
                      ("num_classes", num_classes)):
    check_count(name, count)
  k1, k2 = jax.random.split(key)
  w1 = seeds.normal(k1, (num_features, hidden), dtype) * jnp.sqrt(2.0 / num_features)
  w2 = seeds.normal(k2, (hidden, num_classes), dtype) * jnp.sqrt(2.0 / hidden)
  return {"W1": w1.astype(dtype), "b1": jnp.zeros((hidden,), dtype),
          "W2": w2.astype(dtype), "b2": jnp.zeros((num_classes,), dtype)}


def init(model: str, key: jax.Array, num_features: int, num_classes: int, *,
         hidden: int = 100, scale: float = 1e-3, dtype=jnp.float32) -> dict:
  """Initial parameters for `model` in MODELS."""
  check_name("model", model, MODELS)
  if model == "linear":
    return init_linear(key, num_features, num_classes, scale=scale, dtype=dtype)
  return init_mlp(key, num_features, hidden, num_classes, dtype=dtype)


def apply(model: str, params, x_NxD: jax.Array) -> jax.Array:
  """Scores of `model` in MODELS."""
  check_name("model", model, MODELS)
  return linear(params, x_NxD) if model == "linear" else mlp(params, x_NxD)
