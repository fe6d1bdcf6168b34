"""Per-example classification losses on class scores, and their gradients w.r.t. the scores.

`svm`, `squared_svm` and `softmax` are classification losses; `least_squares` regresses
the scores onto +1/-1 targets (ridge regression, whose minimiser `lincv.ridge` gives in
closed form). Every loss takes scores (N, C) and integer labels (N,) and returns the unreduced
per-example values (N,); the mean over examples is taken in `lincv.objective`. Every
`*_grad` returns dL_i/ds (N, C), derived by hand (no autodiff inside).

Hinge kinks (a margin exactly 0) take the subgradient 0.

Labels must lie in [0, C). An eager call with a label outside raises `ValueError` naming
it and the class count. Under `jit` labels are traced and cannot raise: an example with
a label outside the range (negative ones included; they never wrap around to another
class) gets a NaN loss and a NaN gradient row, so a training run marks its member
diverged rather than training on a wrong class. lincv's data loaders check the range
when they load, so their labels never reach that case.

A loss of your own joins them with `register` (after `lincv.testing.assert_loss_contract`
passes); from then on its name, or the function itself, goes wherever a loss name does:
`value`, `grad`, `lincv.objective`, `lincv.training.Structure`, and a config's `loss` or
`sweep.loss` (by name: a config is written to JSON).
"""

import jax
import jax.numpy as jnp

from lincv._checks import (as_float, check_count, check_labels, check_name, check_nonnegative,
                           check_scores_labels, labels_valid)

BUILTIN = ("svm", "squared_svm", "softmax", "least_squares")
LOSSES = BUILTIN  # and the names `register` adds


def _margins(scores_NxC, labels_N, margin):
  """m_ij = s_ij - s_iy + margin for j != y_i, and 0 at j = y_i; plus the one-hot of y."""
  check_scores_labels(scores_NxC, labels_N)
  check_nonnegative("margin", margin)
  num_classes = scores_NxC.shape[1]
  onehot_NxC = jax.nn.one_hot(labels_N, num_classes, dtype=bool)
  correct_N = jnp.take_along_axis(scores_NxC, labels_N[:, None], axis=1)
  margin = as_float(margin, scores_NxC, "margin")
  m_NxC = scores_NxC - correct_N + margin
  return jnp.where(onehot_NxC, 0, m_NxC), onehot_NxC


def _nan_where_invalid(values, labels_N, num_classes):
  """`values` (N,) or (N, C) with NaN in the rows whose label is out of range."""
  valid = labels_valid(labels_N, num_classes)
  valid = valid if values.ndim == 1 else valid[:, None]
  return jnp.where(valid, values, jnp.nan)


def svm(scores_NxC, labels_N, margin=1.0) -> jax.Array:
  r"""Multiclass hinge loss (Weston-Watkins), one value per example.

  .. math:: L_i = \sum_{j \ne y_i} \max(0, s_j - s_{y_i} + \Delta)

  Args:
    scores_NxC: class scores.
    labels_N: integer class indices.
    margin: Delta >= 0, a float or a scalar array (it may be traced, e.g. in a sweep); a
      concrete one that is negative or not finite raises ValueError.

  Returns:
    losses (N,).

  >>> import jax.numpy as jnp
  >>> round(float(svm(jnp.array([[3.2, 5.1, -1.7]]), jnp.array([0]))[0]), 4)
  2.9
  """
  m_NxC, _ = _margins(scores_NxC, labels_N, margin)
  return _nan_where_invalid(jnp.sum(jnp.maximum(m_NxC, 0), axis=1), labels_N, m_NxC.shape[1])


def svm_grad(scores_NxC, labels_N, margin=1.0) -> jax.Array:
  r"""Gradient of `svm` w.r.t. the scores.

  .. math::
     \partial L_i / \partial s_j = 1[m_{ij} > 0] \quad (j \ne y_i), \qquad
     \partial L_i / \partial s_{y_i} = -\sum_{j \ne y_i} 1[m_{ij} > 0]

  Returns:
    (N, C), like the scores.
  """
  m_NxC, onehot_NxC = _margins(scores_NxC, labels_N, margin)
  active_NxC = (m_NxC > 0).astype(scores_NxC.dtype)
  count_N = jnp.sum(active_NxC, axis=1, keepdims=True)
  return _nan_where_invalid(active_NxC - onehot_NxC * count_N, labels_N, m_NxC.shape[1])


def squared_svm(scores_NxC, labels_N, margin=1.0) -> jax.Array:
  r"""Squared multiclass hinge loss (L2-SVM), one value per example.

  .. math:: L_i = \sum_{j \ne y_i} \max(0, s_j - s_{y_i} + \Delta)^2

  Returns:
    losses (N,).
  """
  m_NxC, _ = _margins(scores_NxC, labels_N, margin)
  return _nan_where_invalid(jnp.sum(jnp.square(jnp.maximum(m_NxC, 0)), axis=1), labels_N,
                            m_NxC.shape[1])


def squared_svm_grad(scores_NxC, labels_N, margin=1.0) -> jax.Array:
  r"""Gradient of `squared_svm` w.r.t. the scores.

  .. math::
     \partial L_i / \partial s_j = 2 \max(0, m_{ij}) \quad (j \ne y_i), \qquad
     \partial L_i / \partial s_{y_i} = -\sum_{j \ne y_i} 2 \max(0, m_{ij})

  Returns:
    (N, C), like the scores.
  """
  m_NxC, onehot_NxC = _margins(scores_NxC, labels_N, margin)
  g_NxC = 2 * jnp.maximum(m_NxC, 0)
  return _nan_where_invalid(g_NxC - onehot_NxC * jnp.sum(g_NxC, axis=1, keepdims=True),
                            labels_N, m_NxC.shape[1])


def softmax(scores_NxC, labels_N) -> jax.Array:
  r"""Softmax cross-entropy (natural log), one value per example.

  .. math:: L_i = -\log \frac{e^{s_{y_i}}}{\sum_j e^{s_j}} = \log \sum_j e^{s_j} - s_{y_i}

  Computed as `max + log(sum(exp(s - max)))`, so scores of 1e4 do not overflow in float32.

  Returns:
    losses (N,).

  >>> import jax.numpy as jnp
  >>> round(float(softmax(jnp.zeros((1, 10)), jnp.array([3]))[0]), 4)  # ln 10
  2.3026
  """
  check_scores_labels(scores_NxC, labels_N)
  shifted_NxC = scores_NxC - jnp.max(scores_NxC, axis=1, keepdims=True)
  log_z_N = jnp.log(jnp.sum(jnp.exp(shifted_NxC), axis=1))
  correct_N = jnp.take_along_axis(shifted_NxC, labels_N[:, None], axis=1)[:, 0]
  return _nan_where_invalid(log_z_N - correct_N, labels_N, scores_NxC.shape[1])


def softmax_grad(scores_NxC, labels_N) -> jax.Array:
  r"""Gradient of `softmax` w.r.t. the scores: the probabilities minus the one-hot label.

  .. math:: \partial L_i / \partial s_j = p_{ij} - 1[j = y_i], \quad
            p_{ij} = e^{s_j} / \sum_k e^{s_k}

  Returns:
    (N, C), like the scores.
  """
  check_scores_labels(scores_NxC, labels_N)
  shifted_NxC = scores_NxC - jnp.max(scores_NxC, axis=1, keepdims=True)
  e_NxC = jnp.exp(shifted_NxC)
  p_NxC = e_NxC / jnp.sum(e_NxC, axis=1, keepdims=True)
  g_NxC = p_NxC - jax.nn.one_hot(labels_N, scores_NxC.shape[1], dtype=scores_NxC.dtype)
  return _nan_where_invalid(g_NxC, labels_N, scores_NxC.shape[1])


def targets(labels_N, num_classes: int, dtype=jnp.float32) -> jax.Array:
  """The regression targets of `least_squares`: +1 at the label, -1 elsewhere, (N, C).

  Integer labels (N,); an eager call with one outside [0, num_classes) raises ValueError
  (its row would be all -1)."""
  check_count("num_classes", num_classes)
  check_labels(labels_N, num_classes)
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.signedinteger)):
    raise ValueError(f"targets hold -1, which dtype {jnp.dtype(dtype).name} cannot (it "
                     "wrapped to 255 in uint8); give a float or signed integer dtype")
  return 2 * jax.nn.one_hot(labels_N, num_classes, dtype=dtype) - 1


def least_squares(scores_NxC, labels_N) -> jax.Array:
  r"""Squared error of the scores to +1/-1 targets, one value per example.

  .. math:: L_i = \sum_j (s_j - t_j)^2, \qquad t_j = +1 \text{ if } j = y_i
            \text{ else } -1

  With `reg="l2"` this is ridge regression on one-vs-rest targets, which
  `lincv.ridge.path` solves in closed form. The targets are +1/-1, as in scikit-learn's
  `RidgeClassifier` and big_vision's few-shot evaluator, rather than +1/0: with the
  (unpenalised) bias the two give the same predictions at every strength (the +1/-1
  solution is twice the +1/0 one, its bias shifted by -1), so the choice only fixes the
  loss's scale, and +1/-1 makes lincv's weights equal scikit-learn's at `alpha = N *
  reg_strength` and keeps the targets symmetric about 0 (no class is favoured by a bias
  of 0). There is no 1/2: the gradient is `2 (s - t)`, as the squared hinge's is.

  Returns:
    losses (N,).

  >>> import jax.numpy as jnp
  >>> float(least_squares(jnp.array([[1.0, 0.0, -1.0]]), jnp.array([0]))[0])  # 0 + 1 + 0
  1.0
  """
  check_scores_labels(scores_NxC, labels_N)
  r_NxC = scores_NxC - targets(labels_N, scores_NxC.shape[1], scores_NxC.dtype)
  return _nan_where_invalid(jnp.sum(jnp.square(r_NxC), axis=1), labels_N, scores_NxC.shape[1])


def least_squares_grad(scores_NxC, labels_N) -> jax.Array:
  r"""Gradient of `least_squares` w.r.t. the scores: twice the residual.

  .. math:: \partial L_i / \partial s_j = 2 (s_j - t_j)

  Returns:
    (N, C), like the scores.
  """
  check_scores_labels(scores_NxC, labels_N)
  r_NxC = scores_NxC - targets(labels_N, scores_NxC.shape[1], scores_NxC.dtype)
  return _nan_where_invalid(2 * r_NxC, labels_N, scores_NxC.shape[1])


_VALUES = {"svm": svm, "squared_svm": squared_svm, "softmax": softmax,
           "least_squares": least_squares}
_GRADS = {"svm": svm_grad, "squared_svm": squared_svm_grad, "softmax": softmax_grad,
          "least_squares": least_squares_grad}
_MARGIN = ("svm", "squared_svm")


def _autodiff_grad(value_fn):
  def grad_fn(scores_NxC, labels_N):
    return jax.grad(lambda s: jnp.sum(value_fn(s, labels_N)))(scores_NxC)
  grad_fn.__name__ = f"autodiff_{getattr(value_fn, '__name__', 'loss')}"
  return grad_fn


def register(name: str, value_fn, grad_fn=None, *, num_classes: int = 3) -> str:
  r"""Adds a loss of your own to `LOSSES`, after `lincv.testing.assert_loss_contract`.

  Args:
    name: the name configs and sweeps use; not one of lincv's own (`BUILTIN`).
    value_fn: `(scores_NxC, labels_N) -> losses (N,)`, pure, refusing labels out of range
      with `check_scores_labels(scores_NxC, labels_N)` (as lincv's own losses do).
    grad_fn: `(scores_NxC, labels_N) -> dL_i/ds (N, C)`, derived by hand; None uses
      `jax.grad` of the summed losses.
    num_classes: the class count the contract is checked with.

  Returns:
    `name`. Registering the same functions under the same name again does nothing.

  Raises:
    AssertionError: the contract fails (its message says where).
    ValueError: `name` is lincv's own, or is taken by other functions (a compiled
      training program is cached by the loss name, so a name keeps its functions).

  >>> import jax.numpy as jnp
  >>> def half_squares(s, y):
  ...   check_scores_labels(s, y)
  ...   return jnp.sum(jnp.square(s), axis=1) / 2
  >>> def half_squares_grad(s, y):
  ...   check_scores_labels(s, y)
  ...   return s
  >>> register("half_squares", half_squares, half_squares_grad)
  'half_squares'
  >>> float(value(half_squares, jnp.array([[1.0, 2.0]]), jnp.array([0]))[0])
  2.5
  """
  global LOSSES  # pylint: disable=global-statement
  if not isinstance(name, str) or not name.isidentifier():
    raise ValueError(f"a loss name is a Python identifier, got {name!r}")
  if name in BUILTIN:
    raise ValueError(f"loss {name!r} is lincv's own; register yours under another name")
  if name in _VALUES:
    if _VALUES[name] is value_fn and _GIVEN_GRADS.get(name) is grad_fn:
      return name
    raise ValueError(f"loss {name!r} is registered to other functions; register these "
                     "under a new name")
  from lincv import testing  # pylint: disable=import-outside-toplevel
  testing.assert_loss_contract(value_fn, grad_fn, num_classes=num_classes, name=name)
  _VALUES[name] = value_fn
  _GRADS[name] = _autodiff_grad(value_fn) if grad_fn is None else grad_fn
  _GIVEN_GRADS[name] = grad_fn
  LOSSES = LOSSES + (name,)
  return name


_GIVEN_GRADS = {}


def resolve(loss) -> str:
  """The name of `loss`: a name in `LOSSES`, or a function `register` was given."""
  if callable(loss):
    for name, fn in _VALUES.items():
      if fn is loss:
        return name
    raise ValueError(
        f"loss {getattr(loss, '__name__', loss)!r} is not registered; register it first "
        "with lincv.losses.register(name, loss_fn, grad_fn), which checks its contract")
  return check_name("loss", loss, LOSSES)


def value(name, scores_NxC, labels_N, *, margin=1.0) -> jax.Array:
  """Per-example loss `name` in LOSSES, or a registered loss function (`margin` is used
  by the SVM losses only)."""
  name = resolve(name)
  extra = (margin,) if name in _MARGIN else ()
  return _VALUES[name](scores_NxC, labels_N, *extra)


def grad(name, scores_NxC, labels_N, *, margin=1.0) -> jax.Array:
  """Per-example gradient dL_i/ds of loss `name` in LOSSES (or a registered function)."""
  name = resolve(name)
  extra = (margin,) if name in _MARGIN else ()
  return _GRADS[name](scores_NxC, labels_N, *extra)
