r"""`assert_grad_correct` and `assert_jit_vmap_consistent`: one-line checks of a function.

Both raise `AssertionError` with one message that says what differs and where: the worst
coordinate (named as `gradcheck.coordinate_name` names it, e.g. `['W'][3, 1]`), the two
values there, the relative error and the tolerance, which comes from the dtype:

  gradients    sqrt(eps) (`gradcheck.default_tolerance`): 3.5e-4 for float32, 1.5e-8 for
               float64. A gradient scaled by 1.01 is off by about 5e-3 in the relative
               error `max|a - b| / max(|a| + |b|)`, so it fails in either dtype.
  jit / vmap   256 eps (3.1e-5 for float32): a jitted or vmapped call evaluates the same
               formulas as the plain one, sums possibly in another order, which moves the
               result by a few ulps of its largest value per term; an impure function
               (numpy randomness, a global it reads and changes) differs by far more.
"""

import jax
import jax.numpy as jnp
import numpy as np

from lincv import gradcheck, precision
from lincv._checks import check_hparam

AGAINST = ("jax", "numerical")
_TINY = 1e-30


def consistency_tolerance(dtype) -> float:
  """The tolerance `assert_jit_vmap_consistent` uses for outputs of `dtype`: 256 eps, at
  most 1/8, and 0 for integers and booleans (labels, counts), which must agree exactly.

  The relative error is at most 1, so bfloat16's 256 eps, 2, let every output pass."""
  if not jnp.issubdtype(dtype, jnp.inexact):
    return 0.0
  return float(min(256 * jnp.finfo(dtype).eps, 1 / 8))


def _check_tol(tol) -> float | None:
  if tol is not None:
    check_hparam("tol", tol, "a number in [0, 1) (a relative error is at most 1), or None",
                 lambda v: 0 <= v < 1)
    return float(tol)
  return None


def _worst_by_leaf(got, want, tol):
  """(relative error, flat index, got there, want there, tolerance) of the leaf of two
  pytrees of one structure that most exceeds its tolerance (or, if none does, of the
  worst leaf), each leaf compared on its own: `tol`, or `consistency_tolerance` of its
  dtype (pooled, an integer output off by one hid beside floats of 1e6)."""
  worst, offset = None, 0
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    leaf_tol = consistency_tolerance(jnp.result_type(w)) if tol is None else tol
    err, pos, gv, wv = worst_difference(g, w)
    over = err > leaf_tol
    if worst is None or (over and not worst[5]) or (over == worst[5] and err > worst[0]):
      worst = (err, offset + pos, gv, wv, leaf_tol, over)
    offset += int(np.size(w))
  if worst is None:
    return 0.0, 0, float("nan"), float("nan"), 0.0 if tol is None else tol
  return worst[:5]


def _name(fn) -> str:
  return getattr(fn, "__name__", None) or type(fn).__name__


def check_like(what: str, got, want, want_name: str) -> None:
  """Asserts that pytree `got` has the structure, shapes and dtypes of `want`."""
  if jax.tree.structure(got) != jax.tree.structure(want):
    raise AssertionError(f"{what} is not structured like {want_name}: "
                         f"{jax.tree.structure(got)} vs {jax.tree.structure(want)}")
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    g_sig = (tuple(np.shape(g)), str(jnp.result_type(g)))
    w_sig = (tuple(np.shape(w)), str(jnp.result_type(w)))
    if g_sig != w_sig:
      where = jax.tree_util.keystr(path)
      raise AssertionError(
          f"{what}{where} has shape {g_sig[0]} and dtype {g_sig[1]}, but "
          f"{want_name}{where} has shape {w_sig[0]} and dtype {w_sig[1]}")


def worst_difference(a, b, skip=()):
  """(relative error, flat index, a there, b there) of two pytrees of one structure.

  The error is `max|a - b| / max(|a| + |b|)` over the finite entries; entries equal in
  both (NaN in both included) do not differ, and a NaN or an infinity in one only makes
  the error infinite. Flat indices in `skip` are left out.
  """
  a, b = _flat64(a), _flat64(b)
  same = (a == b) | (np.isnan(a) & np.isnan(b))
  same[list(skip)] = True
  with np.errstate(invalid="ignore"):
    diff = np.where(same, 0.0, np.abs(a - b))
  diff[np.isnan(diff)] = np.inf
  if diff.size == 0:
    return 0.0, 0, float("nan"), float("nan")
  mags = np.abs(a) + np.abs(b)
  finite = np.isfinite(mags)
  scale = max(float(np.max(mags[finite], initial=0.0)), _TINY)
  pos = int(np.argmax(diff))
  return float(diff[pos] / scale), pos, float(a[pos]), float(b[pos])


def _flat64(tree) -> np.ndarray:
  leaves = [np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)]
  return np.concatenate(leaves) if leaves else np.zeros(0)


def assert_grad_correct(f, params, grad=None, *, against=AGAINST, tol: float | None = None,
                        num_checks: int | None = None, seed: int = 0, name: str | None = None):
  """Asserts that `grad` is the gradient of scalar `f` at `params`.

  `grad` (a pytree like `params`; `jax.grad(f)(params)` when None) is compared with
  `jax.grad(f)` ("jax") and with centred differences taken by `lincv.gradcheck.check`
  ("numerical"), which checks coordinates whose step crosses a kink apart, against the
  one-sided slopes beside them (a subgradient lies between them); those are left out of
  the comparison with jax.grad (at |w| = 0 a hand subgradient 0 and jax.grad's 1 are both
  right). The tolerance is sqrt(eps) of the gradient's dtype unless `tol` is
  given. The error is relative to the largest entries of the whole gradient: a leaf far
  smaller than another is held to that scale (see `lincv.gradcheck`, Scale); assert it
  on its own, as a function of that leaf alone, to hold it to its own.

  Args:
    f: a JAX-traceable function of the parameter pytree returning a scalar.
    params: the point, a pytree of floating arrays.
    grad: the hand-derived gradient at `params`, or None.
    against: any of "jax" and "numerical".
    tol: the largest relative error allowed; None derives it from the dtype.
    num_checks: centred differences at this many random coordinates (None: all).
    seed: seed of that sample.
    name: what the messages call `f` (default: its `__name__`).

  Returns:
    the numerical check's `gradcheck.Report` (its kinks listed), or None without one.

  Raises:
    AssertionError: `grad` is not shaped like `params` ("grad of f['W'] has shape ...");
      it differs from jax.grad ("grad of f differs from jax.grad at ['W'][1, 0]: grad
      ..., jax.grad ... (relative error ... > tolerance ... for float32)"), or from
      centred differences ("... differs from centred differences at ..."); or every
      coordinate checked is at a kink.

  >>> import jax.numpy as jnp
  >>> w = jnp.array([0.5, -1.0, 2.0])
  >>> _ = assert_grad_correct(lambda w: jnp.sum(jnp.sin(w)), w, jnp.cos(w))
  >>> assert_grad_correct(lambda w: jnp.sum(jnp.sin(w)), w, -jnp.cos(w))
  Traceback (most recent call last):
  ...
  AssertionError: grad of <lambda> differs from jax.grad at [0]: grad -0.87758255, jax.grad ...
  """
  against = (against,) if isinstance(against, str) else tuple(against)
  if not against or any(a not in AGAINST for a in against):
    raise ValueError(f"against takes a non-empty subset of {AGAINST}, got {against}")
  name = name or _name(f)
  auto = None
  if grad is None or "jax" in against:
    with precision.exact():
      auto = jax.jit(jax.grad(f))(params)
  grad = auto if grad is None else grad
  check_like(f"grad of {name}", grad, params, "params")
  flat = _flat64(grad)
  bad = np.flatnonzero(~np.isfinite(flat))
  if bad.size:
    raise AssertionError(
        f"grad of {name} is not finite at {gradcheck.coordinate_name(params, int(bad[0]))}: "
        f"{flat[bad[0]]} ({bad.size} of {flat.size} entries); a gradient is checked where "
        "it is finite")
  g_dtype = gradcheck.stored_dtype(grad)
  tol = _check_tol(tol)
  tol = gradcheck.default_tolerance(g_dtype) if tol is None else tol
  report = None
  if "numerical" in against:
    report = gradcheck.check(f, params, grad, num_checks=num_checks, seed=seed)
  if "jax" in against:
    skip = () if report is None else report.kink_indices
    err, pos, g, a = worst_difference(grad, auto, skip=skip)
    if not err <= tol:
      raise AssertionError(
          f"grad of {name} differs from jax.grad at {gradcheck.coordinate_name(params, pos)}: "
          f"grad {g:.8g}, jax.grad {a:.8g} (relative error {err:.3g} > tolerance {tol:.2g} "
          f"for {g_dtype})")
  if report is None:
    return None
  kinks = f", {report.num_kinks} at kinks" if report.num_kinks else ""
  if report.num_checked == 0:
    raise AssertionError(f"grad of {name} could not be checked: all {report.num_kinks} "
                         "coordinates checked are at kinks; choose another point")
  if not report.max_relative_error <= tol:
    raise AssertionError(
        f"grad of {name} differs from centred differences at {report.worst}: grad "
        f"{report.worst_analytic:.8g}, numerical {report.worst_numerical:.8g} (relative "
        f"error {report.max_relative_error:.3g} > tolerance {tol:.2g} for {g_dtype}; "
        f"differences in {report.eval_dtype}{kinks})")
  if not report.kink_error <= tol:
    raise AssertionError(
        f"grad of {name} is no subgradient {report.kink_text()}, more than the tolerance "
        f"{tol:.2g} for {g_dtype} (differences in {report.eval_dtype})")
  return report


def _slice(args, in_axes, i):
  return tuple(a if ax is None else jax.tree.map(lambda x: jnp.take(x, i, axis=ax), a)
               for a, ax in zip(args, in_axes))


def _agree(what, got, want, got_name, want_name, tol, where_tree):
  check_like(f"{what}: {got_name}", got, want, want_name)
  err, pos, g, w, tol = _worst_by_leaf(got, want, tol)
  if not err <= tol:
    raise AssertionError(
        f"{what}: {got_name} differs from {want_name} at "
        f"{gradcheck.coordinate_name(where_tree, pos)}: {g:.8g} vs {w:.8g} "
        f"(relative error {err:.3g} > tolerance {tol:.2g})")


def assert_jit_vmap_consistent(fn, *args, in_axes=0, tol: float | None = None,
                               name: str | None = None) -> None:
  """Asserts that `fn` is pure and that jitted, vmapped and plain calls agree.

  `args` hold a batch along the axes `in_axes` names (as `jax.vmap` reads it: 0 for every
  argument, or one entry per argument, None for an argument shared by the batch). With
  B the batch size, the checks are, in order: two plain calls on the first example agree
  (a function that draws numpy random numbers, or reads a global it changes, does not);
  `jax.jit(fn)` agrees with the plain call on every example; `jax.vmap(fn)` (jitted, as
  lincv's sweeps run it) agrees with the loop of B plain calls. The tolerance is 256 eps
  of the outputs' dtype unless `tol` is given.

  Raises:
    AssertionError: "fn is not pure: a second plain call with the same arguments
      differs ...", "fn fails under jax.jit or jax.vmap: ...", "fn: jax.jit(fn) differs
      from the plain
      call at [3]: ..." or "fn: jax.vmap(fn) differs from a loop of plain calls at
      [1, 3]: ...", with both values and the tolerance.

  >>> import jax.numpy as jnp
  >>> assert_jit_vmap_consistent(lambda x: jnp.sum(x ** 2), jnp.ones((3, 4)))
  >>> import numpy as np
  >>> noisy = lambda x: x + np.random.normal()
  >>> assert_jit_vmap_consistent(noisy, jnp.ones((3, 4)), name="noisy")
  Traceback (most recent call last):
  ...
  AssertionError: noisy is not pure: a second plain call with the same arguments differs at [0]: ...
  """
  name = name or _name(fn)
  in_axes = (in_axes,) * len(args) if not isinstance(in_axes, (tuple, list)) else tuple(in_axes)
  if len(in_axes) != len(args):
    raise ValueError(f"in_axes has {len(in_axes)} entries for {len(args)} arguments")
  sizes = {np.shape(leaf)[ax] for a, ax in zip(args, in_axes) if ax is not None
           for leaf in jax.tree.leaves(a)}
  if len(sizes) != 1:
    raise ValueError(f"the batched arguments need one batch size along in_axes, got {sizes}")
  (size,) = sizes
  loop = [fn(*_slice(args, in_axes, i)) for i in range(size)]
  again = fn(*_slice(args, in_axes, 0))
  tol = _check_tol(tol)
  check_like(f"{name}: a second plain call", again, loop[0], "the first")
  err, pos, g, w, leaf_tol = _worst_by_leaf(again, loop[0], tol)
  if not err <= leaf_tol:
    raise AssertionError(
        f"{name} is not pure: a second plain call with the same arguments differs at "
        f"{gradcheck.coordinate_name(loop[0], pos)}: {g:.8g} vs {w:.8g} (relative error "
        f"{err:.3g} > tolerance {leaf_tol:.2g}); does it draw numpy random numbers or read a "
        "global it changes?")
  jit_out = _traced(name, lambda: [jax.jit(fn)(*_slice(args, in_axes, i)) for i in range(size)])
  for i in range(size):
    _agree(name, jit_out[i], loop[i], "jax.jit(fn)", "the plain call", tol, loop[i])
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *loop)
  vmapped = _traced(name, lambda: jax.jit(jax.vmap(fn, in_axes=in_axes))(*args))
  _agree(name, vmapped, stacked, "jax.vmap(fn)", "a loop of plain calls", tol, stacked)


def _traced(name, call):
  """call(); an error JAX raises while tracing becomes an AssertionError naming `name`."""
  try:
    return call()
  except (jax.errors.JAXTypeError, jax.errors.UnexpectedTracerError, TypeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise AssertionError(f"{name} fails under jax.jit or jax.vmap: {first}") from e
