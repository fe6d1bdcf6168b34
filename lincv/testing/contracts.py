"""The contracts a loss, a regularizer and a score function keep, as one assertion each.

Each generates small inputs from `seed` in `dtype` (default: JAX's default float, float32
unless 64-bit mode is on), runs the checks in a fixed order and raises `AssertionError`
at the first that fails, its message naming the function, what it promised and what it
did. The gradient and consistency checks are `assert_grad_correct` and
`assert_jit_vmap_consistent`, with the tolerances they derive from the dtype.
"""

import jax
import jax.numpy as jnp
import numpy as np

from lincv._checks import check_dtype
from lincv.testing.asserts import (_name, assert_grad_correct, assert_jit_vmap_consistent,
                                   check_like, consistency_tolerance, worst_difference)

LARGE = 1e4  # the score (or weight, or input) magnitude every function must survive in float32
_BATCH = 3   # score matrices (weights, parameter sets) in the vmap check


def _float(dtype) -> np.dtype:
  """`dtype`, or JAX's default float; float64 while 64-bit JAX is off is refused."""
  return check_dtype(jnp.zeros(()).dtype if dtype is None else dtype)


def _expect(what: str, out, shape: tuple, dtype) -> None:
  if tuple(np.shape(out)) != tuple(shape) or np.dtype(jnp.result_type(out)) != dtype:
    raise AssertionError(f"{what} returned shape {tuple(np.shape(out))} and dtype "
                         f"{jnp.result_type(out)}, expected shape {tuple(shape)} and "
                         f"dtype {dtype}")


def _finite(what: str, out, inputs: str) -> None:
  bad = np.flatnonzero(~np.isfinite(np.asarray(out, np.float64)))
  if bad.size:
    where = np.unravel_index(bad[0], np.shape(out))
    raise AssertionError(f"{what} is not finite at {inputs} in float32: "
                         f"{np.asarray(out).ravel()[bad[0]]} at {list(map(int, where))}")


def _large_scores(n: int, c: int) -> jax.Array:
  """float32 (n, c) rows of +-1e4 and 0, the classes in turn taking the largest score."""
  row = np.resize(np.array([LARGE, -LARGE, 0.0], np.float32), c)
  return jnp.asarray(np.stack([np.roll(row, i) for i in range(n)]))


def assert_loss_contract(loss_fn, grad_fn=None, *, num_classes: int, num_examples: int = 8,
                         dtype=None, seed: int = 0, name: str | None = None) -> None:
  """Asserts that `loss_fn(scores_NxC, labels_N)` is a per-example loss lincv can train.

  Checks, for generated scores (N, C) of scale 3 and labels in [0, C):
    1. `loss_fn` returns (N,) in the scores' dtype; `grad_fn`, when given, (N, C).
    2. an eager call with a label out of range (C, then -1) raises ValueError; lincv's
       own losses call `lincv.losses.check_scores_labels(scores, labels)` first.
    3. both are finite at float32 scores of 1e4 (rows of +-1e4 and 0).
    4. both are pure, and jit and vmap over a batch of score matrices agree with a loop
       (`assert_jit_vmap_consistent`).
    5. `grad_fn` is the gradient of `sum(loss_fn)` w.r.t. the scores
       (`assert_grad_correct`, against jax.grad and centred differences).

  Raises:
    AssertionError: e.g. "loss smooth_hinge returned shape () and dtype float32,
      expected shape (8,) and dtype float32", "loss smooth_hinge accepted label 3
      (example 1) for 3 classes; ...", "loss smooth_hinge is not finite at scores of 1e4
      in float32: ...", or the message of the failing gradient or consistency check.

  >>> from lincv import losses
  >>> assert_loss_contract(losses.softmax, losses.softmax_grad, num_classes=4)
  >>> assert_loss_contract(losses.softmax, losses.svm_grad, num_classes=4)
  Traceback (most recent call last):
  ...
  AssertionError: grad of loss softmax differs from jax.grad at ...: ...
  """
  name = f"loss {name or _name(loss_fn)}"
  gname = f"grad {_name(grad_fn)} of {name}" if grad_fn is not None else None
  dtype, n, c = _float(dtype), num_examples, num_classes
  if c < 2 or n < 2:
    raise ValueError(f"num_classes and num_examples must be >= 2, got {c} and {n}")
  rng = np.random.default_rng(seed)
  scores_BxNxC = jnp.asarray(3 * rng.standard_normal((_BATCH, n, c)), dtype)
  labels_N = jnp.asarray(rng.integers(0, c, n), jnp.int32)
  s_NxC = scores_BxNxC[0]
  fns = [(name, loss_fn, (n,))] + ([(gname, grad_fn, (n, c))] if grad_fn is not None else [])
  for what, fn, shape in fns:
    _expect(what, fn(s_NxC, labels_N), shape, dtype)
  for what, fn, _ in fns:
    for bad in (c, -1):
      y = np.array(labels_N)
      y[1] = bad
      try:
        fn(s_NxC, y)
      except ValueError:
        continue
      raise AssertionError(
          f"{what} accepted label {bad} (example 1) for {c} classes; an eager call must "
          f"raise ValueError for labels outside [0, {c - 1}]: call "
          "lincv.losses.check_scores_labels(scores, labels) first")
  large = _large_scores(n, c)
  for what, fn, _ in fns:
    _finite(what, fn(large, labels_N), f"scores of {LARGE:g}")
  for what, fn, _ in fns:
    assert_jit_vmap_consistent(fn, scores_BxNxC, labels_N, in_axes=(0, None), name=what)
  if grad_fn is not None:
    assert_grad_correct(lambda s: jnp.sum(loss_fn(s, labels_N)), s_NxC,
                        grad_fn(s_NxC, labels_N), name=name)


def assert_regularizer_contract(reg_fn, grad_fn=None, *, shape=(5, 3), dtype=None,
                                seed: int = 0, name: str | None = None) -> None:
  """Asserts that `reg_fn(w)` is a penalty lincv can add to its objective.

  Checks, for generated weights of `shape` (standard normal):
    1. `reg_fn` returns a scalar in the weights' dtype; `grad_fn`, when given, an array
       shaped like the weights.
    2. both are finite at float32 weights of +-1e4.
    3. both are pure, and jit and vmap over a batch of weight matrices agree with a loop.
    4. `grad_fn` is the gradient of `reg_fn` (`assert_grad_correct`).

  Raises:
    AssertionError: e.g. "regularizer l2 returned shape (5, 3) and dtype float32,
      expected shape () and dtype float32", or the failing check's message.

  >>> from lincv import regularizers
  >>> assert_regularizer_contract(regularizers.l2, regularizers.l2_grad)
  """
  name = f"regularizer {name or _name(reg_fn)}"
  gname = f"grad {_name(grad_fn)} of {name}" if grad_fn is not None else None
  dtype = _float(dtype)
  w_BxS = jnp.asarray(np.random.default_rng(seed).standard_normal((_BATCH, *shape)), dtype)
  fns = [(name, reg_fn, ())] + ([(gname, grad_fn, tuple(shape))] if grad_fn is not None else [])
  for what, fn, out_shape in fns:
    _expect(what, fn(w_BxS[0]), out_shape, dtype)
  large = jnp.asarray(np.resize(np.array([LARGE, -LARGE], np.float32), shape))
  for what, fn, _ in fns:
    _finite(what, fn(large), f"weights of +-{LARGE:g}")
  for what, fn, _ in fns:
    assert_jit_vmap_consistent(fn, w_BxS, name=what)
  if grad_fn is not None:
    assert_grad_correct(reg_fn, w_BxS[0], grad_fn(w_BxS[0]), name=name)


def assert_score_contract(score_fn, init_fn, *, num_features: int = 4, num_classes: int = 3,
                          num_examples: int = 6, dtype=None, seed: int = 0,
                          name: str | None = None) -> None:
  """Asserts that `score_fn(params, x_NxD)` and `init_fn` make a model lincv can train.

  `init_fn(key, num_features, num_classes, dtype=dtype)` returns the parameters (for
  lincv's mlp: `functools.partial(lincv.scores.init, "mlp", hidden=5)`). Checks:
    1. `init_fn` returns floating parameters of `dtype`, the same for the same key and
       others for another key (it draws from the key, not from numpy).
    2. `score_fn` returns scores (N, C) in `dtype`, finite at float32 inputs of 1e4.
    3. it is pure, and jit and vmap over a batch of parameter sets (as a sweep trains
       them) agree with a loop.
    4. the scores of an example do not depend on the other examples in the batch.
    5. its jax.grad w.r.t. the parameters agrees with centred differences (ReLU kinks
       reported apart).

  Raises:
    AssertionError: e.g. "score linear returned shape (3, 6) and dtype float32, expected
      shape (6, 3) and dtype float32", "init init_linear is not a function of its key:
      ...", "score f mixes examples: ...", or the failing check's message.

  >>> from lincv import scores
  >>> assert_score_contract(scores.linear, scores.init_linear)
  """
  name = f"score {name or _name(score_fn)}"
  iname = f"init {_name(init_fn)}"
  dtype, d, c, n = _float(dtype), num_features, num_classes, num_examples
  key = jax.random.key(seed)
  keys = jax.random.split(key, _BATCH)
  params = init_fn(keys[0], d, c, dtype=dtype)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if np.dtype(jnp.result_type(leaf)) != dtype:
      raise AssertionError(f"{iname} returned {jax.tree_util.keystr(path)} of dtype "
                           f"{jnp.result_type(leaf)}, expected {dtype}")
  again = init_fn(keys[0], d, c, dtype=dtype)
  check_like(f"{iname} called again", again, params, "its first result")
  err, pos, a, b = worst_difference(again, params)
  if err > 0:
    raise AssertionError(f"{iname} is not a function of its key: two calls with the same "
                         f"key differ at entry {pos}: {a:.8g} vs {b:.8g}")
  if worst_difference(init_fn(keys[1], d, c, dtype=dtype), params)[0] == 0:
    raise AssertionError(f"{iname} ignores its key: two keys give the same parameters")
  x_NxD = jax.random.normal(jax.random.fold_in(key, 1), (n, d), dtype)
  s_NxC = score_fn(params, x_NxD)
  _expect(name, s_NxC, (n, c), dtype)
  p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  _finite(name, score_fn(p32, jnp.full((n, d), LARGE, jnp.float32)), f"inputs of {LARGE:g}")
  batch = jax.tree.map(lambda *xs: jnp.stack(xs),
                       *[init_fn(k, d, c, dtype=dtype) for k in keys])
  assert_jit_vmap_consistent(score_fn, batch, x_NxD, in_axes=(0, None), name=name)
  half = n // 2
  err, pos, a, b = worst_difference(score_fn(params, x_NxD[:half]), s_NxC[:half])
  if err > consistency_tolerance(dtype):
    raise AssertionError(
        f"{name} mixes examples: the scores of the first {half} rows change when the "
        f"other rows are left out (entry {pos}: {a:.8g} alone vs {b:.8g} in the batch)")
  r_NxC = jax.random.normal(jax.random.fold_in(key, 2), (n, c), dtype)
  assert_grad_correct(lambda p: jnp.sum(r_NxC * score_fn(p, x_NxD)), params,
                      against="numerical", name=name)
