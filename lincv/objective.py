r"""The full training objective and its gradient, derived by hand with the chain rule.

.. math::
   J(\theta) = \frac{1}{N} \sum_i L_i(s(\theta; x_i), y_i) + \lambda \sum_{W \in \theta} R(W)

The penalty sums over the weight matrices ("W", "W1", "W2"), never over the biases.

Backpropagation, with :math:`G = \frac{1}{N} \partial L / \partial s` (N, C):

  linear  s = xW + b:   dW = x^T G + lambda R'(W),   db = sum_i G_i
  mlp     a = xW1 + b1, h = max(0, a), s = hW2 + b2:
          dW2 = h^T G + lambda R'(W2),  db2 = sum_i G_i,
          dA = (G W2^T) * 1[a > 0],     dW1 = x^T dA + lambda R'(W1),  db1 = sum_i dA_i
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import losses, regularizers, scores
from lincv._checks import as_float, check_name, check_nonnegative, wide_ints_as_float32

PARAM_KEYS = {"linear": ("W", "b"), "mlp": ("W1", "W2", "b1", "b2")}
INPUT_WEIGHT = {"linear": "W", "mlp": "W1"}  # the weight that multiplies the inputs
OUTPUT_LAYER = {"linear": ("W", "b"), "mlp": ("W2", "b2")}  # the layer that gives scores


def resolve_loss(loss):
  """The name of `loss` (see `lincv.losses.resolve`), or for a tuple of losses, the tuple
  of their names: the losses of a group whose members differ in their loss only, each
  member choosing one by its `loss_index` (see `loss_values`)."""
  if not isinstance(loss, (tuple, list)):
    return losses.resolve(loss)
  names = tuple(losses.resolve(name) for name in loss)
  if len(names) < 2 or len(set(names)) != len(names):
    raise ValueError(f"a tuple of losses names two or more different losses, got {names}")
  return names


def _check_loss_index(loss, loss_index) -> None:
  """Raises ValueError on a known `loss_index` that is not a position in `loss`:
  `jax.lax.switch` clamps the index, so -1 or len(loss) would silently pick the first or
  last loss. A traced index (one per member under `vmap`) cannot be checked here."""
  if isinstance(loss_index, jax.core.Tracer):
    return
  index = np.asarray(loss_index)
  valid = f"an integer in [0, {len(loss)}) for losses {loss}"
  if index.ndim or not np.issubdtype(index.dtype, np.integer):
    raise ValueError(f"loss_index must be {valid}, got {loss_index!r}")
  if not 0 <= int(index) < len(loss):
    raise ValueError(f"loss_index must be {valid}, got {int(index)}")


def _by_index(fn, loss, loss_index, s_NxC, labels_N, margin):
  """`fn(loss, s_NxC, labels_N, margin=margin)`; for a tuple of losses, that of the loss
  at `loss_index` (an integer, possibly traced) chosen by `jax.lax.switch`. Under `vmap`
  over members with a batched index, every loss of the tuple is computed on the (N, C)
  scores and each member's is selected, which costs little beside the products."""
  if not isinstance(loss, tuple):
    return fn(loss, s_NxC, labels_N, margin=margin)
  if loss_index is None:
    raise ValueError(f"losses {loss} need loss_index, the position of the member's loss")
  check_nonnegative("margin", margin)  # traced inside the switch, so checked here
  _check_loss_index(loss, loss_index)
  branches = [lambda s, y, m, name=name: fn(name, s, y, margin=m) for name in loss]
  return jax.lax.switch(jnp.asarray(loss_index, jnp.int32), branches, s_NxC, labels_N,
                        as_float(margin, s_NxC, "margin"))


def loss_values(loss, s_NxC, labels_N, *, margin=1.0, loss_index=None) -> jax.Array:
  """Per-example values (N,) of `loss` (`lincv.losses.value`), or of the loss at
  `loss_index` of a tuple of losses."""
  return _by_index(losses.value, loss, loss_index, s_NxC, labels_N, margin)


def loss_grads(loss, s_NxC, labels_N, *, margin=1.0, loss_index=None) -> jax.Array:
  """Per-example gradients dL_i/ds (N, C) of `loss` (`lincv.losses.grad`), or of the loss
  at `loss_index` of a tuple of losses."""
  return _by_index(losses.grad, loss, loss_index, s_NxC, labels_N, margin)


def _check(params, model, loss, reg, x_NxD, **hparams):
  check_name("model", model, scores.MODELS)
  resolve_loss(loss)
  check_name("regularizer", reg, regularizers.REGULARIZERS)
  keys = tuple(sorted(params))
  if keys != tuple(sorted(PARAM_KEYS[model])):
    raise ValueError(
        f"model {model!r} takes parameters {sorted(PARAM_KEYS[model])}, got {list(keys)}")
  if jnp.ndim(x_NxD) >= 1 and jnp.shape(x_NxD)[0] == 0:
    raise ValueError(f"the objective is a mean over examples and x has none (shape "
                     f"{jnp.shape(x_NxD)}); pass at least one row")
  for name, value in hparams.items():
    check_nonnegative(name, value)


def _penalty(params, reg, reg_strength, beta):
  """lambda * sum of R over the weight matrices."""
  weights = [w for path, w in jax.tree_util.tree_leaves_with_path(params)
             if str(path[-1].key).startswith("W")]
  total = sum(regularizers.value(reg, w, beta=beta) for w in weights)
  return as_float(reg_strength, weights[0], "reg_strength") * total


def loss(params, x_NxD, labels_N, *, model="linear", loss="softmax", reg="l2",
         reg_strength=0.0, margin=1.0, beta=1.0, loss_index=None) -> jax.Array:
  """Mean data loss plus `reg_strength` times the penalty on the weight matrices.

  Args:
    params: a parameter dict of `model` (see `lincv.scores`).
    x_NxD: inputs.
    labels_N: integer labels.
    model: one of `lincv.scores.MODELS`.
    loss: one of `lincv.losses.LOSSES`, or a loss function given to
      `lincv.losses.register`.
    reg: one of `lincv.regularizers.REGULARIZERS`.
    reg_strength: lambda >= 0; a float or a scalar array (it may be traced).
    margin: the hinge margin of the SVM losses, >= 0.
    beta: the weight of the squared term of the elastic net, >= 0. A concrete
      `reg_strength`, `margin` or `beta` that is negative or not finite raises ValueError,
      as does an `x` of no rows (the mean over none is NaN).
    loss_index: with a tuple of losses as `loss`, the position of the one to use (see
      `loss_values`).

  Returns:
    the scalar objective.
  """
  _check(params, model, loss, reg, x_NxD, reg_strength=reg_strength, margin=margin,
         beta=beta)
  s_NxC = scores.apply(model, params, x_NxD)     # int64 rows widened there
  data = jnp.mean(loss_values(loss, s_NxC, labels_N, margin=margin, loss_index=loss_index))
  return data + _penalty(params, reg, reg_strength, beta)


def loss_and_grad(params, x_NxD, labels_N, *, model="linear", loss="softmax", reg="l2",
                  reg_strength=0.0, margin=1.0, beta=1.0, loss_index=None):
  """The objective and its hand-derived gradient, sharing one forward pass.

  Takes the arguments of `loss`; returns `(value, grads)` with `grads` shaped like
  `params`.
  """
  _check(params, model, loss, reg, x_NxD, reg_strength=reg_strength, margin=margin,
         beta=beta)
  x_NxD = wide_ints_as_float32(x_NxD)
  # The shapes `loss` checks, the biases' among them (a bias of 1 entry was broadcast to
  # every class); traced only, nothing computed.
  jax.eval_shape(functools.partial(scores.apply, model), params, x_NxD)
  first = INPUT_WEIGHT[model]
  value, grads_t = loss_and_grad_t(
      transpose_input(params, model), x_NxD, labels_N, model=model, loss=loss, reg=reg,
      reg_strength=reg_strength, margin=margin, beta=beta, loss_index=loss_index)
  # The barrier keeps XLA from folding the transpose back into x^T G, which XLA:CPU
  # computes several times slower than G^T x.
  grads_t[first] = jax.lax.optimization_barrier(grads_t[first])
  return value, transpose_input(grads_t, model)


def transpose_input(params, model="linear") -> dict:
  """`params` with the input layer's weight transposed: W (D, C) <-> (C, D), W1 (D, H) <-> (H, D)."""
  first = INPUT_WEIGHT[model]
  return {**params, first: params[first].T}


def transpose_input_like(tree, params, model="linear"):
  """`tree` with `transpose_input` applied to every subtree shaped like `params`.

  A subtree is parameter-shaped when its tree structure and its leaves' shapes are
  those of `params` (in either layout: the layouts share them but for the input weight,
  whose two shapes are each other's transpose). So the parameters, their gradients and
  an optimizer's per-parameter state (momentum's trace, Adam's moments) change layout
  together, and nothing else does: not a step count, nor the injected hyperparameters,
  whatever they are named. Applied twice it is the identity.
  """
  treedef = jax.tree.structure(params)
  shapes = lambda t: [jnp.shape(leaf) for leaf in jax.tree.leaves(t)]
  layouts = (shapes(params), shapes(jax.eval_shape(lambda p: transpose_input(p, model), params)))
  like = lambda t: jax.tree.structure(t) == treedef and shapes(t) in layouts
  return jax.tree.map(lambda t: transpose_input(t, model) if like(t) else t, tree,
                      is_leaf=like)


def _forward_t(params_t, x_NxD, model):
  """(a, h, s): pre-activation and activation of the first layer, and the scores (N, C),
  from parameters in the `transpose_input` layout."""
  w_in = params_t[INPUT_WEIGHT[model]]
  chex.assert_rank(w_in, 2)
  chex.assert_shape(x_NxD, (None, w_in.shape[1]))
  # As (W x^T)^T: the weight is the left operand, so under vmap over K members sharing x
  # their weights are one (K*C, D) operand as stored, not one XLA first copies to (D, K*C).
  a_NxH = (w_in @ x_NxD.T).T + params_t["b" if model == "linear" else "b1"][None, :]
  if model == "linear":
    return a_NxH, x_NxD, a_NxH
  h_NxH = jnp.maximum(a_NxH, 0)
  return a_NxH, h_NxH, h_NxH @ params_t["W2"] + params_t["b2"][None, :]


def scores_t(params_t, x_NxD, model="linear") -> jax.Array:
  """Class scores (N, C) from parameters in the `transpose_input` layout."""
  check_name("model", model, scores.MODELS)
  return _forward_t(params_t, x_NxD, model)[2]


def loss_and_grad_t(params_t, x_NxD, labels_N, *, model="linear", loss="softmax", reg="l2",
                    reg_strength=0.0, margin=1.0, beta=1.0, loss_index=None):
  """`loss_and_grad` on parameters whose input-layer weight is stored transposed.

  `params_t` is `transpose_input(params, model)`: W as (C, D) (or W1 as (H, D)); the
  gradient comes back in the same layout. This is the layout the training loop carries:
  the weight gradient is then `G^T x` (C, D), the product XLA:CPU computes several times
  faster than `x^T G`, and under `vmap` over K members sharing x the members' weights and
  gradients are row blocks of one (K*C, D) matrix, in place. Same formulas as
  `loss_and_grad`.
  """
  _check(params_t, model, loss, reg, x_NxD, reg_strength=reg_strength, margin=margin,
         beta=beta)
  chex.assert_rank(x_NxD, 2)
  n = x_NxD.shape[0]
  reg_grad = functools.partial(regularizers.grad, reg, beta=beta)
  w_in = params_t[INPUT_WEIGHT[model]]
  # In the weights' dtype, as in `_penalty` (x may be integer).
  lam = as_float(reg_strength, w_in, "reg_strength")
  a_NxH, h_NxH, s_NxC = _forward_t(params_t, x_NxD, model)
  data = jnp.mean(loss_values(loss, s_NxC, labels_N, margin=margin, loss_index=loss_index))
  value = data + _penalty(params_t, reg, reg_strength, beta)

  # dL/ds summed over the rows, then divided by n: the svm's entries are whole numbers, so
  # their sums are exact, in any order of summation.
  g_NxC = loss_grads(loss, s_NxC, labels_N, margin=margin, loss_index=loss_index)
  db_out = jnp.sum(g_NxC, axis=0) / n
  if model == "linear":
    return value, {"W": (g_NxC.T @ x_NxD) / n + lam * reg_grad(w_in), "b": db_out}
  g_NxC = g_NxC / n
  w2 = params_t["W2"]
  dw2 = h_NxH.T @ g_NxC + lam * reg_grad(w2)
  da_NxH = (g_NxC @ w2.T) * (a_NxH > 0).astype(a_NxH.dtype)
  dw1_t = da_NxH.T @ x_NxD + lam * reg_grad(w_in)
  return value, {"W1": dw1_t, "b1": jnp.sum(da_NxH, axis=0), "W2": dw2, "b2": db_out}


def grad(params, x_NxD, labels_N, *, model="linear", loss="softmax", reg="l2",
         reg_strength=0.0, margin=1.0, beta=1.0, loss_index=None):
  """Hand-derived gradient of `loss` w.r.t. `params`, shaped like `params`; takes the
  arguments of `loss`."""
  return loss_and_grad(params, x_NxD, labels_N, model=model, loss=loss, reg=reg,
                       reg_strength=reg_strength, margin=margin, beta=beta,
                       loss_index=loss_index)[1]
