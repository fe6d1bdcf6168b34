"""Weight penalties R(w) and their gradients; each takes one array and returns a scalar.

`lincv.objective` sums them over the weight matrices of a model (never the biases) and
scales the sum by the regularization strength lambda. Weights are floating: integer ones
are refused.
"""

import jax
import jax.numpy as jnp

from lincv._checks import as_float, check_array, check_name, check_nonnegative

REGULARIZERS = ("none", "l2", "l1", "elastic_net")


def _check_weights(w) -> None:
  check_array("w", w)    # a list raised "Cannot determine dtype"
  if not jnp.issubdtype(jnp.result_type(w), jnp.floating):
    raise ValueError(f"weights must be floating, got dtype {jnp.result_type(w)} (an integer "
                     "dtype would truncate beta to an integer and overflow the squares)")


def l2(w) -> jax.Array:
  r"""Squared L2 norm, :math:`R(w) = \sum_k w_k^2`, with gradient :math:`2w`."""
  _check_weights(w)
  return jnp.sum(jnp.square(w))


def l2_grad(w) -> jax.Array:
  """Gradient of `l2`: `2 w`."""
  _check_weights(w)
  return 2 * w


def l1(w) -> jax.Array:
  r"""L1 norm, :math:`R(w) = \sum_k |w_k|`, with (sub)gradient :math:`\mathrm{sign}(w)`."""
  _check_weights(w)
  return jnp.sum(jnp.abs(w))


def l1_grad(w) -> jax.Array:
  """Subgradient of `l1`: `sign(w)`, with `sign(0) = 0`."""
  _check_weights(w)
  return jnp.sign(w)


def elastic_net(w, beta=1.0) -> jax.Array:
  r"""Elastic net as in the lecture notes, :math:`R(w) = \sum_k \beta w_k^2 + |w_k|`."""
  _check_weights(w)
  check_nonnegative("beta", beta)
  beta = as_float(beta, w, "beta")
  return jnp.sum(beta * jnp.square(w) + jnp.abs(w))


def elastic_net_grad(w, beta=1.0) -> jax.Array:
  """Gradient of `elastic_net`: `2 beta w + sign(w)`, with `sign(0) = 0`."""
  _check_weights(w)
  check_nonnegative("beta", beta)
  beta = as_float(beta, w, "beta")
  return 2 * beta * w + jnp.sign(w)


def value(name: str, w, *, beta=1.0) -> jax.Array:
  """Penalty `name` in REGULARIZERS of one weight array ("none" gives 0)."""
  check_name("regularizer", name, REGULARIZERS)
  _check_weights(w)
  if name == "none":
    return jnp.zeros((), jnp.result_type(w))
  if name == "elastic_net":
    return elastic_net(w, beta)
  return (l2 if name == "l2" else l1)(w)


def grad(name: str, w, *, beta=1.0) -> jax.Array:
  """Gradient of penalty `name` in REGULARIZERS w.r.t. `w`."""
  check_name("regularizer", name, REGULARIZERS)
  _check_weights(w)
  if name == "none":
    return jnp.zeros_like(w)
  if name == "elastic_net":
    return elastic_net_grad(w, beta)
  return (l2_grad if name == "l2" else l1_grad)(w)
