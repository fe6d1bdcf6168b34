r"""Numerical gradient checks that know about kinks and about float32.

A hand-derived gradient is compared with centered differences,

.. math:: \frac{\partial f}{\partial \theta_k} \approx
          \frac{f(\theta + h_k e_k) - f(\theta - h_k e_k)}{2h_k},

coordinate by coordinate. Hinge losses, ReLUs and |w| have kinks where the centered
difference is meaningless; `check` spots the coordinates whose step crosses one and
reports them apart instead of failing on them.

Precision. The centered difference has a truncation error of order
:math:`h^2 f'''` and a rounding error of order :math:`\epsilon |f| / h`, where
:math:`\epsilon` is the machine epsilon of the arithmetic that evaluates f. In float32
(:math:`\epsilon \approx 1.2 \times 10^{-7}`) that floor is near 1e-2 at h = 1e-5, about
the size of the mistakes a check must catch. So the differences are taken in float64 by
default: float32 parameters are widened exactly (every float32 is a float64) and f runs
under `jax.enable_x64`, which leaves its value at those parameters unchanged but computes
it with 1e-16 rounding. The step of coordinate k is
:math:`h_k = \epsilon^{1/3} \max(1, |\theta_k|)`, which balances the two errors; the
tolerance is :math:`\sqrt{\epsilon_g}`, where :math:`\epsilon_g` is the epsilon of the
gradient being checked: 3.5e-4 for a float32 gradient (a gradient off by 1% is off by
about 5e-3 in `relative_error`), 1.5e-8 for a float64 one. Where f insists on its own
precision (it casts to float32 inside, or the backend has no float64), the differences
are taken in that precision with the step and tolerance derived from it, the `Report`
says so, and a warning says what that costs: in float32 the step is about 5e-3, wide
enough to cross hinge and ReLU kinks too small to be told from rounding, and the rounding
of a mean over many rows adds to it, so a correct gradient of an SVM objective over 200
rows differs from the differences by about 3e-3, close to a 1%-wrong one's 5e-3.

Scale. The relative error is pooled over every coordinate (`relative_error`): a gradient
is held to the scale of its largest entries. A leaf whose gradient is far smaller than
another's (a bias gradient of 0.1 beside weight gradients of 2,000, under a strong
penalty) is held only to that larger scale, so in float32 even its sign can be wrong
within the tolerance. Check such a leaf on its own, as a function of that leaf with the
others held fixed, to hold it to its own scale. Leaf by leaf, a tolerance on each leaf's
own scale would fail correct float32 gradients whose leaf sits near a stationary point,
where its entries are sums that cancel to their rounding.

Kink test: for a function that is smooth on [-2h, 2h], the second differences at steps h
and 2h agree to O(h^2). A kink inside that interval makes them disagree by a factor of
about two, and the one-sided slopes (f(+h) - f(0))/h and (f(0) - f(-h))/h differ by the
jump in slope, far more than rounding explains. Both must hold to call it a kink.

At a kink the centred difference is no gradient, but the one-sided slopes still bound
one: for a convex function every subgradient at theta lies between the slope of the
secant to its left and that to its right. So a coordinate at a kink is checked to lie
between the two slopes, widened by their first-order truncation error (h times the
second difference beside the kink, for the parts that are not convex, such as a two-layer
net's ReLUs) and the rounding of f; how far outside it lies, relative to the gradient's
scale, is held to the same tolerance (`Report.kink_error`). Skipped outright, a kink
coordinate was not checked at all: at zero weights with an L1 or elastic-net penalty
every weight is at the kink of |w|, and a weight gradient of the wrong sign, or all
zeros, passed on the biases alone.
"""

import contextlib
import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lincv import precision
from lincv._checks import check_count, check_hparam

_TINY = 1e-30


def _leaf_shapes(tree) -> list[tuple]:
  return [np.shape(leaf) for leaf in jax.tree.leaves(tree)]


def relative_error(a, b) -> float | jax.Array:
  """Scalar relative error of two arrays (or pytrees): `max|a - b| / max(|a| + |b|)`.

  The denominator is the largest magnitude present, so coordinates that are zero in
  both do not blow the ratio up; it is floored at a tiny number. Known values are
  compared in float64 (NumPy), whatever JAX's precision, so float64 arrays are not
  rounded to float32 first when 64-bit JAX is off; under `jit` it is a traced array.
  """
  shapes = [_leaf_shapes(a), _leaf_shapes(b)]
  if shapes[0] != shapes[1]:   # equal sizes of other shapes compared unrelated entries
    raise ValueError(f"relative_error needs arrays of one shape, got {shapes[0]} and "
                     f"{shapes[1]}")
  if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((a, b))):
    a, _ = ravel_pytree(a)
    b, _ = ravel_pytree(b)
    xp = jnp
  else:
    a, b = (np.concatenate([np.ravel(np.asarray(leaf, np.float64))
                            for leaf in jax.tree.leaves(t)] or [np.zeros(0)]) for t in (a, b))
    xp = np
  if a.shape != b.shape:
    raise ValueError(f"relative_error needs equal sizes, got {a.shape} and {b.shape}")
  num = xp.max(xp.abs(a - b), initial=0.0)
  den = xp.max(xp.abs(a) + xp.abs(b), initial=0.0)
  return num / xp.maximum(den, _TINY)


def _params_dtype(params) -> np.dtype:
  leaves = jax.tree.leaves(params)
  if not leaves:
    raise ValueError("params has no arrays to check")
  for leaf in leaves:
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(f"params must be floating arrays, got a leaf of dtype "
                       f"{jnp.result_type(leaf)}")
  return np.dtype(jnp.result_type(*leaves))


def stored_dtype(tree) -> np.dtype:
  """The dtype the leaves of `tree` hold, promoted: a NumPy float64 array is float64
  whether or not 64-bit JAX is on (`jnp.result_type` reads it as float32 when it is off,
  and a float64 gradient was then held to float32's tolerance, 2e4 times looser)."""
  dtypes = [leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
            for leaf in jax.tree.leaves(tree)]
  return np.dtype(np.result_type(*dtypes))


def default_tolerance(grad_dtype) -> float:
  """The tolerance `check` uses for a gradient of `grad_dtype`: sqrt(eps)."""
  return float(np.sqrt(jnp.finfo(grad_dtype).eps))


class _Probe:
  """f as a function of one flat parameter vector, evaluated in `eval_dtype`.

  The float64 probe widens the parameters and runs f under `jax.enable_x64`; if f still
  returns a narrower float (it casts inside), the probe falls back to the parameters' own
  dtype, so that steps and tolerances match the arithmetic really used.
  """

  def __init__(self, f, params, eval_dtype=None):
    native = _params_dtype(params)
    wanted = np.dtype(eval_dtype) if eval_dtype is not None else np.dtype(np.float64)
    if eval_dtype is None and jax.default_backend() == "tpu":
      wanted = native  # no fast float64 there
    self.dtype = wanted
    self.unravel = _unraveler(params)
    if not any(np.size(leaf) for leaf in jax.tree.leaves(params)):
      raise ValueError(f"params hold no entries (leaf shapes {_leaf_shapes(params)}): there "
                       "is no gradient to check; give parameters with at least one entry")
    with self.scope():
      self.flat = jnp.asarray(_flat64(params), wanted)  # widening is exact
      out = jax.eval_shape(lambda v: f(self.unravel(v)), self.flat)
    if out.shape != ():
      raise ValueError(f"f must return a scalar, got shape {out.shape}")
    self.why = (f"eval_dtype={self.dtype.name} was asked" if eval_dtype is not None else
                "the backend has no fast float64")
    if np.dtype(out.dtype).itemsize < wanted.itemsize and wanted != native:
      self.dtype = native
      self.flat = jnp.asarray(_flat64(params), native)  # the float32 values, unchanged
      self.why = f"f returns {np.dtype(out.dtype).name} from float64 parameters"
    elif np.dtype(out.dtype).itemsize < wanted.itemsize:
      self.dtype = np.dtype(out.dtype)
      self.why = f"f returns {np.dtype(out.dtype).name}"
    self.fun = f

  def warn_if_narrow(self) -> None:
    """Warns when the differences are taken in less than float64 (see the module doc)."""
    if self.dtype.itemsize < 8:
      warnings.warn(
          f"gradient check: differences taken in {self.dtype.name} ({self.why}): they "
          "resolve a gradient to about 1e-3 of its scale, so a correct gradient of a mean of many hinges or ReLUs may fail and one "
          "off by less than that may pass; for a sure check let f compute in float64 (no "
          "cast inside it; on a TPU, run the check on the CPU)", UserWarning, stacklevel=3)

  @contextlib.contextmanager
  def scope(self):
    """f's evaluations: in 64-bit JAX if the probe widened to float64, and with float32
    products (`lincv.precision.exact`): an accelerator's default reduced-precision
    products would swamp the differences."""
    wide = self.dtype == np.float64 and not jax.config.jax_enable_x64
    with precision.exact(), jax.enable_x64(True) if wide else contextlib.nullcontext():
      yield

  @property
  def eps(self) -> float:
    return float(jnp.finfo(self.dtype).eps)

  def steps(self, indices, h: float | None) -> np.ndarray:
    """Per-coordinate steps h * max(1, |theta_k|), rounded to a power of two so that
    theta_k + m h_k is exact for the multipliers used."""
    if h is not None:
      check_hparam("h", h, "a finite step > 0, or None", lambda v: 0 < v < np.inf)
    base = self.eps ** (1 / 3) if h is None else h
    theta = np.abs(np.asarray(self.flat, np.float64)[indices])
    steps = np.exp2(np.round(np.log2(base * np.maximum(1.0, theta))))
    if h is not None and np.any(steps < self.eps * theta):
      # theta + h rounded back to theta: every difference, and the gradient, was 0.
      raise ValueError(f"h={h:g} is below {self.dtype.name}'s resolution at |theta| up to "
                       f"{theta.max():.3g} (theta + h == theta); give h >= "
                       f"{self.eps:.3g} or None")
    return steps

  def __call__(self, indices, steps_M, multipliers) -> np.ndarray:
    """f at theta + m h_k e_k for every coordinate k and multiplier m: (M, S) float64."""
    with self.scope():
      fun = lambda v: self.fun(self.unravel(v))
      mult = np.asarray(multipliers, self.dtype)

      def at(flat, k_and_h):
        k, h = k_and_h
        return jax.vmap(lambda m: fun(flat.at[k].add(m * h)))(mult)

      # One program: lax.map run eagerly would compile each of its operations apart.
      out = jax.jit(lambda flat, ks, hs: jax.lax.map(
          lambda kh: at(flat, kh), (ks, hs), batch_size=64))(
              self.flat, np.asarray(indices, np.int32), np.asarray(steps_M, self.dtype))
      return np.asarray(out, dtype=np.float64)


def _flat64(tree) -> np.ndarray:
  """The leaves of `tree` as one flat float64 numpy vector (`ravel_pytree`'s order)."""
  leaves = [np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(tree)]
  return np.concatenate(leaves) if leaves else np.zeros(0)


def _unraveler(params):
  """flat vector -> pytree shaped like `params`, in the vector's dtype (traceable)."""
  leaves, treedef = jax.tree.flatten(params)
  shapes = [np.shape(leaf) for leaf in leaves]
  starts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
  return lambda v: jax.tree.unflatten(
      treedef, [v[a:b].reshape(s) for s, a, b in zip(shapes, starts, starts[1:])])


def numerical_grad(f, params, h: float | None = None, *, eval_dtype=None):
  """Centered-difference gradient of scalar `f` at `params`, shaped like `params`.

  Args:
    f: a JAX-traceable function of the parameter pytree returning a scalar.
    params: a pytree of floating arrays.
    h: the base step (scaled by max(1, |theta_k|) per coordinate); None derives it from
      the evaluation dtype, eps ** (1/3).
    eval_dtype: the dtype f is evaluated in; None is float64 (see the module doc).

  Returns:
    the gradient, in the dtypes of `params`: a NumPy float64 leaf as a NumPy float64
    array where 64-bit JAX is off (JAX would make it float32), every other leaf a JAX
    array.
  """
  probe = _Probe(f, params, eval_dtype)
  indices = np.arange(probe.flat.size)
  steps = probe.steps(indices, h)
  vals = probe(indices, steps, (1.0, -1.0))
  g = (vals[:, 0] - vals[:, 1]) / (2 * steps)
  leaves, treedef = jax.tree.flatten(params)
  out, start = [], 0
  for leaf in leaves:      # each leaf in its own dtype: NumPy float64 stays float64
    part, start = g[start:start + np.size(leaf)].reshape(np.shape(leaf)), start + np.size(leaf)
    dtype = stored_dtype(leaf)
    wide = dtype.itemsize > 4 and not jax.config.jax_enable_x64   # JAX would truncate it
    out.append(part.astype(dtype) if wide else jnp.asarray(part, dtype))
  return jax.tree.unflatten(treedef, out)


def coordinate_name(params, index: int) -> str:
  """Readable name of flat coordinate `index` of `params`, e.g. "W[3, 1]"."""
  offset = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    size = int(np.size(leaf))
    if index < offset + size:
      where = np.unravel_index(index - offset, np.shape(leaf))
      return f"{jax.tree_util.keystr(path)}[{', '.join(map(str, where))}]"
    offset += size
  raise IndexError(f"coordinate {index} out of range for {offset} parameters")


@dataclasses.dataclass(frozen=True)
class Report:
  """Outcome of `check`.

  Attributes:
    max_relative_error: `relative_error` of analytic vs numerical gradient over the
      checked coordinates that are not kinks (0 if there are none).
    num_checked: coordinates compared (kinks excluded).
    num_kinks: coordinates whose step crosses a kink, checked against their one-sided
      slopes instead.
    kink_indices: flat indices (in `ravel_pytree` order) of those coordinates.
    kink_error: how far the analytic value lies outside its one-sided slopes, at the
      kink where that is largest, relative to the gradient's scale (0 if none lies outside).
    kink_worst: that kink's name, or None; `kink_analytic` its analytic value and
      `kink_slopes` its (left, right) one-sided slopes.
    worst: name of the coordinate with the largest absolute error, or None.
    worst_analytic, worst_numerical: the two values at `worst` (NaN if None).
    dtype: the dtype of the gradient checked.
    eval_dtype: the dtype the differences were taken in.
    step: the base step h (coordinate k moves by h * max(1, |theta_k|), rounded to a
      power of two).
    tol: the default tolerance, sqrt(eps) of `dtype`; `passed()` uses it.
  """
  max_relative_error: float
  num_checked: int
  num_kinks: int
  kink_indices: tuple[int, ...]
  worst: str | None
  worst_analytic: float = float("nan")
  worst_numerical: float = float("nan")
  dtype: str = "float64"
  eval_dtype: str = "float64"
  step: float = 1e-5
  tol: float = 1.5e-8
  kink_error: float = 0.0
  kink_worst: str | None = None
  kink_analytic: float = float("nan")
  kink_slopes: tuple[float, float] = (float("nan"), float("nan"))

  def passed(self, tol: float | None = None) -> bool:
    """True if at least one coordinate was checked, the error is at most `tol` (default:
    the report's own `tol`, derived from the gradient's dtype) and no kink coordinate
    lies further than `tol` outside its one-sided slopes."""
    tol = self.tol if tol is None else tol
    return (self.num_checked > 0 and self.max_relative_error <= tol
            and self.kink_error <= tol)

  def kink_text(self) -> str:
    """The kink coordinate furthest outside its one-sided slopes, as words ("" if none)."""
    if self.kink_worst is None:
      return ""
    left, right = self.kink_slopes
    return (f"at the kink {self.kink_worst}: analytic {self.kink_analytic:.8g} outside "
            f"its one-sided slopes {left:.8g} and {right:.8g} (by {self.kink_error:.3g} "
            "of the gradient's scale)")

  def __str__(self) -> str:
    verdict = "passed" if self.passed() else "FAILED"
    where = (f"; worst {self.worst}: analytic {self.worst_analytic:.8g}, numerical "
             f"{self.worst_numerical:.8g}" if self.worst else "")
    kink = f"; {self.kink_text()}" if self.kink_worst else ""
    return (f"gradient check {verdict}: relative error {self.max_relative_error:.3g} "
            f"(tolerance {self.tol:.2g} for {self.dtype}) over {self.num_checked} "
            f"coordinates and {self.num_kinks} kinks checked against their one-sided "
            f"slopes, differences in {self.eval_dtype} with step {self.step:.3g}"
            f"{where}{kink}")


def check(f, params, grad, *, num_checks: int | None = None, h: float | None = None,
          seed: int = 0, eval_dtype=None) -> Report:
  """Compares the gradient `grad` of `f` at `params` with centered differences.

  Args:
    f: scalar function of the parameter pytree (JAX-traceable).
    params: the point to check at.
    grad: the analytic gradient at `params`, a pytree like `params`.
    num_checks: check this many coordinates drawn at random without replacement
      (seeded by `seed`); None checks all of them.
    h: the base finite-difference step; None derives it from the evaluation dtype.
    seed: seed of the coordinate sample.
    eval_dtype: the dtype f is evaluated in; None is float64, falling back to the
      parameters' dtype where f computes in a narrower one (see the module doc).

  Returns:
    a `Report`; nothing is printed. `report.passed()` applies the dtype's tolerance.

  >>> import jax.numpy as jnp
  >>> w = jnp.array([0.5, -1.0, 2.0], jnp.float32)
  >>> r = check(lambda w: jnp.sum(jnp.sin(w)), w, jnp.cos(w))
  >>> r.passed(), r.dtype, r.eval_dtype
  (True, 'float32', 'float64')
  >>> check(lambda w: jnp.sum(jnp.sin(w)), w, 1.01 * jnp.cos(w)).passed()
  False
  """
  flat, g_flat = _flat64(params), _flat64(grad)
  shapes = [_leaf_shapes(grad), _leaf_shapes(params)]
  if g_flat.shape != flat.shape or shapes[0] != shapes[1]:
    raise ValueError(
        f"grad has {g_flat.size} coordinates of shapes {shapes[0]} but params has "
        f"{flat.size} of shapes {shapes[1]}; grad must be shaped like params")
  g_dtype = stored_dtype(grad)
  if not jnp.issubdtype(g_dtype, jnp.floating):
    raise ValueError(f"grad must be floating, got dtype {g_dtype}")
  if num_checks is not None:      # 1.5 and a seed of -1 failed inside NumPy's sampler
    check_count("num_checks (or None: every coordinate)", num_checks)
  check_count("seed", seed, minimum=0)
  probe = _Probe(f, params, eval_dtype)
  probe.warn_if_narrow()
  size = flat.size
  if num_checks is None or num_checks >= size:
    indices = np.arange(size)
  else:
    indices = np.sort(np.random.default_rng(seed).choice(size, num_checks, replace=False))

  steps = probe.steps(indices, h)
  v = probe(indices, steps, (2.0, 1.0, 0.0, -1.0, -2.0))
  f2, f1, f0, fm1, fm2 = v.T
  numeric = (f1 - fm1) / (2 * steps)
  d2_h = (f1 - 2 * f0 + fm1) / steps**2
  d2_2h = (f2 - 2 * f0 + fm2) / (2 * steps) ** 2
  slope_jump = np.abs((f1 - f0) - (f0 - fm1)) / steps
  rounding = 1e3 * probe.eps * (np.abs(f0) + 1.0) / steps
  curvature_disagrees = np.abs(d2_h - d2_2h) > 0.1 * np.maximum(np.abs(d2_h), np.abs(d2_2h))
  kink = curvature_disagrees & (slope_jump > rounding)

  analytic = g_flat[indices]
  keep = ~kink
  # At a kink: the secant slopes beside theta, widened by their truncation (h times the
  # second difference on that side) and by the rounding of f (see the module doc).
  left, right = (f0 - fm1) / steps, (f1 - f0) / steps
  second = np.maximum(np.abs(f0 - 2 * fm1 + fm2), np.abs(f2 - 2 * f1 + f0)) / steps
  slack = second + rounding
  outside = np.maximum(np.maximum(np.minimum(left, right) - slack - analytic,
                                  analytic - np.maximum(left, right) - slack), 0)
  outside = np.where(kink, outside, 0.0)
  # The gradient's scale, as `relative_error` takes it: its largest |analytic| + |numeric|.
  scale = max(float(np.max(np.abs(analytic) + np.where(
      kink, np.maximum(np.abs(left), np.abs(right)), np.abs(numeric)), initial=0.0)), _TINY)
  worst, worst_a, worst_n, err = None, float("nan"), float("nan"), 0.0
  if keep.any():
    a, n = analytic[keep], numeric[keep]
    err = float(relative_error(a, n))
    pos = int(np.argmax(np.abs(a - n)))
    worst = coordinate_name(params, int(indices[keep][pos]))
    worst_a, worst_n = float(a[pos]), float(n[pos])
  kink_fields = {}
  if np.any(outside > 0):
    pos = int(np.argmax(outside))
    kink_fields = dict(kink_error=float(outside[pos] / scale),
                       kink_worst=coordinate_name(params, int(indices[pos])),
                       kink_analytic=float(analytic[pos]),
                       kink_slopes=(float(left[pos]), float(right[pos])))
  return Report(max_relative_error=err, num_checked=int(keep.sum()),
                num_kinks=int(kink.sum()), kink_indices=tuple(int(i) for i in indices[kink]),
                worst=worst, worst_analytic=worst_a, worst_numerical=worst_n,
                dtype=str(g_dtype), eval_dtype=str(probe.dtype),
                step=float(probe.eps ** (1 / 3) if h is None else h),
                tol=default_tolerance(g_dtype), **kink_fields)
