"""The lecture notes' baselines for a linear classifier: random search and random local search.

Both look for W (D, C) of the linear score function `s = x W` without gradients:

  random search        draw W ~ scale * N(0, 1) `num_tries` times, keep the one of lowest
                       loss on the training rows (the "very bad idea": about 15% on CIFAR-10);
  random local search  start from a random W and accept a step W + step * N(0, 1) whenever
                       it lowers the loss (about 21% on CIFAR-10 in the notes).

The loss is the mean of `lincv.losses.<loss>` over (a fixed subset of) the training rows,
without regularization. Draws are batched and vmapped, so many candidates are scored
with one matrix product.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from lincv import losses, seeds
from lincv._checks import (check_count, check_hparam, check_key, check_labels,
                           first_nonfinite_row, wide_ints_as_float32, working_float)

METHODS = ("random_search", "random_local_search")


def _mean_loss(loss: str, w_DxC, x_NxD, y_N):
  return jnp.mean(losses.value(loss, x_NxD @ w_DxC, y_N))


def random_candidate(key, i, shape, dtype, scale: float):
  """Candidate `i` of a random search: `scale * N(0, 1)` of shape (D, C) from `fold_in(key, i)`."""
  return jnp.asarray(scale, dtype) * seeds.normal(jax.random.fold_in(key, i), shape, dtype)


def _check(x_NxD, y_N, num_classes: int):
  """Rows (N, D), N >= 1, and labels (N,) in [0, num_classes), finite rows: else a
  ValueError (a bad label or row would make every candidate's loss NaN). Traced values are
  not looked at. Returns the rows as an array of their working float: integer rows (uint8
  pixels) drew integer candidates (an OverflowError from NumPy), and float16 ones summed
  in float16."""
  if not isinstance(x_NxD, jax.Array):     # host rows stay on the host (no program)
    x_NxD = np.asarray(wide_ints_as_float32(x_NxD))
  if working_float(x_NxD.dtype) != x_NxD.dtype:
    x_NxD = x_NxD.astype(working_float(x_NxD.dtype))
  chex.assert_rank(x_NxD, 2, custom_message="x_NxD must be rows (N, D)")
  check_count("num_classes", num_classes)
  if x_NxD.shape[0] == 0:   # the mean loss over no rows was NaN for every candidate
    raise ValueError(f"x_NxD has no rows (shape {x_NxD.shape}); the training loss needs at "
                     "least one")
  check_labels(y_N, num_classes, x_NxD.shape[0])
  if isinstance(x_NxD, jax.core.Tracer):
    return x_NxD
  row = first_nonfinite_row(x_NxD)
  if row is not None:
    raise ValueError(f"row {row} holds a NaN or infinite value; every row must be finite")
  return x_NxD


def _check_positive(name: str, value) -> None:
  # A NaN step kept the starting point (no try lowered the loss); a NaN or infinite scale
  # made every candidate NaN; at 0 every candidate was the same.
  check_hparam(name, value, "a finite number > 0", lambda v: 0 < v < np.inf)


def random_search(key, x_NxD, y_N, num_classes: int, *, loss: str = "svm",
                  num_tries: int = 1000, scale: float = 1e-4, batch: int = 50):
  """Best of exactly `num_tries` random weight matrices by training loss.

  Candidate i is `random_candidate(key, i, ...)` whatever `batch` (how many are scored
  with one matrix product) is; the last batch's slots past `num_tries` are not scored.
  The lowest loss wins, ties and non-finite losses going to the lowest index.

  Returns:
    (W (D, C), its loss, the loss of every try (num_tries,)).
  """
  check_count("num_tries", num_tries)
  check_count("batch", batch)
  _check_positive("scale", scale)
  x_NxD = _check(x_NxD, y_N, num_classes)
  check_key(key)
  return _random_search(key, x_NxD, y_N, num_classes, loss=loss, num_tries=num_tries,
                        scale=scale, batch=batch)


@functools.partial(jax.jit, static_argnames=("num_classes", "loss", "num_tries", "batch"))
def _random_search(key, x_NxD, y_N, num_classes, *, loss, num_tries, scale, batch):
  d = x_NxD.shape[1]
  batch = min(batch, num_tries)
  rounds = -(-num_tries // batch)
  draw = lambda i: random_candidate(key, i, (d, num_classes), x_NxD.dtype, scale)

  def body(carry, idx_B):
    best_i, best_l = carry
    l_B = jax.vmap(lambda i: _mean_loss(loss, draw(i), x_NxD, y_N))(idx_B)
    rank_B = jnp.where((idx_B < num_tries) & ~jnp.isnan(l_B), l_B, jnp.inf)
    j = jnp.argmin(rank_B)
    better = rank_B[j] < best_l
    return (jnp.where(better, idx_B[j], best_i), jnp.where(better, rank_B[j], best_l)), l_B

  init = (jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, x_NxD.dtype))
  idx = jnp.arange(rounds * batch, dtype=jnp.int32).reshape(rounds, batch)
  (best_i, _), l_RxB = jax.lax.scan(body, init, idx)
  tries = l_RxB.reshape(-1)[:num_tries]
  return draw(best_i), tries[best_i], tries


def random_local_search(key, x_NxD, y_N, num_classes: int, *, loss: str = "svm",
                        num_steps: int = 1000, scale: float = 1e-3, step: float = 1e-4):
  """Greedy random perturbations of W, each kept only if it lowers the training loss.

  Returns:
    (W (D, C), its loss, the loss after every step (num_steps,)).
  """
  check_count("num_steps", num_steps)
  _check_positive("scale", scale)
  _check_positive("step", step)
  x_NxD = _check(x_NxD, y_N, num_classes)
  check_key(key)
  return _random_local_search(key, x_NxD, y_N, num_classes, loss=loss, num_steps=num_steps,
                              scale=scale, step=step)


@functools.partial(jax.jit, static_argnames=("num_classes", "loss", "num_steps"))
def _random_local_search(key, x_NxD, y_N, num_classes, *, loss, num_steps, scale, step):
  d = x_NxD.shape[1]
  k0, key = jax.random.split(key)
  w0 = scale * seeds.normal(k0, (d, num_classes), x_NxD.dtype)

  def body(carry, key_t):
    w, l = carry
    w_try = w + step * seeds.normal(key_t, w.shape, w.dtype)
    l_try = _mean_loss(loss, w_try, x_NxD, y_N)
    better = l_try < l
    w, l = jnp.where(better, w_try, w), jnp.where(better, l_try, l)
    return (w, l), l

  (w, l), trace = jax.lax.scan(body, (w0, _mean_loss(loss, w0, x_NxD, y_N)),
                               jax.random.split(key, num_steps))
  return w, l, trace
