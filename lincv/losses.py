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
"""

import jax
import jax.numpy as jnp

from lincv._checks import as_float, check_name, check_scores_labels, labels_valid

LOSSES = ("svm", "squared_svm", "softmax", "least_squares")


def _margins(scores_NxC, labels_N, margin):
  """m_ij = s_ij - s_iy + margin for j != y_i, and 0 at j = y_i; plus the one-hot of y."""
  check_scores_labels(scores_NxC, labels_N)
  num_classes = scores_NxC.shape[1]
  onehot_NxC = jax.nn.one_hot(labels_N, num_classes, dtype=bool)
  correct_N = jnp.take_along_axis(scores_NxC, labels_N[:, None], axis=1)
  margin = as_float(margin, scores_NxC)
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
    margin: Delta, a float or a scalar array (it may be traced, e.g. in a sweep).

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
  """The regression targets of `least_squares`: +1 at the label, -1 elsewhere, (N, C)."""
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


def value(name: str, scores_NxC, labels_N, *, margin=1.0) -> jax.Array:
  """Per-example loss `name` in LOSSES (`margin` is used by the SVM losses only)."""
  check_name("loss", name, LOSSES)
  extra = (margin,) if name in _MARGIN else ()
  return _VALUES[name](scores_NxC, labels_N, *extra)


def grad(name: str, scores_NxC, labels_N, *, margin=1.0) -> jax.Array:
  """Per-example gradient dL_i/ds of loss `name` in LOSSES."""
  check_name("loss", name, LOSSES)
  extra = (margin,) if name in _MARGIN else ()
  return _GRADS[name](scores_NxC, labels_N, *extra)
