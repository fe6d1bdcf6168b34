"""Small validation helpers shared by the math core: names and shapes, checked up front."""

from collections.abc import Iterable, Sequence

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
  check_array("scores_NxC", scores)
  check_array("labels_N", labels)
  chex.assert_rank(scores, 2, custom_message="scores_NxC must be (N, C)")
  n, c = scores.shape
  chex.assert_shape(labels, (n,), custom_message="labels_N must be (N,) for scores_NxC (N, C)")
  chex.assert_type(labels, int, custom_message="labels_N must be integer classes")
  if not jnp.issubdtype(jnp.result_type(scores), jnp.floating):
    raise ValueError(f"scores must be floating, got dtype {jnp.result_type(scores)} (an "
                     "integer dtype would truncate the margin and the loss)")
  if c < 2:
    raise ValueError(f"scores must have at least 2 classes, got shape {scores.shape}")
  check_labels(labels, c, n)


def check_labels(labels, num_classes: int, num_examples: int | None = None,
                 name: str = "") -> None:
  """Raises a ValueError unless `labels` are integers of shape (N,) (N = `num_examples`
  when given) and, when concrete, all in [0, num_classes); `name` (e.g. "y_val") starts
  the message."""
  n = num_examples
  where = f"{name}: " if name else ""
  if n is None and jnp.ndim(labels) == 1:
    n = jnp.shape(labels)[0]
  if jnp.shape(labels) != (n,) or not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    # Also reached under `chex.disable_asserts()`, where (N, 1) labels broadcast silently.
    raise ValueError(f"{where}labels must be integers of shape ({'N' if n is None else n},), "
                     f"got shape {jnp.shape(labels)} and dtype {jnp.result_type(labels)}")
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    bad = np.flatnonzero((values < 0) | (values >= num_classes))
    if bad.size:
      i = int(bad[0])
      raise ValueError(
          f"{where}label {int(values[i])} (example {i}) is out of range for {num_classes} "
          "classes; "
          f"labels must be in [0, {num_classes - 1}] ({bad.size} of {n} are not)")


def check_hparam(name: str, value, valid: str, ok) -> None:
  """Raises a ValueError unless hyperparameter `value` is a scalar and, when it is
  concrete (not traced), a real number for which `ok` holds (NaN fails every `ok`).

  Under `jit` or `vmap` a traced value cannot be checked; lincv's sweeps check theirs up
  front. `valid` says what is valid, for the message.
  """
  if jnp.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar, got shape {jnp.shape(value)}")
  if isinstance(value, jax.core.Tracer):
    return
  v = np.asarray(value)
  real = jnp.issubdtype(v.dtype, jnp.integer) or jnp.issubdtype(v.dtype, jnp.floating)
  if not real or not ok(float(v)):
    raise ValueError(f"{name} must be {valid}, got {value!r}")


def check_count(name: str, value, minimum: int = 1) -> int:
  """Returns `value` as an int if it is an integer (a NumPy one too) >= `minimum`, else
  raises a ValueError naming it (a bool, 2.0 or -3 is not a count)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    valid = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ValueError(f"{name} must be {valid}, got {value!r}")
  return int(value)


def check_key(key, name: str = "key") -> None:
  """Raises a TypeError unless `key` is one JAX PRNG key: a typed key (`jax.random.key`)
  or a raw uint32 (2,) one (`jax.random.PRNGKey`)."""
  typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  raw = (isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32
         and key.shape == (2,))
  if not (typed and key.shape == () or raw):
    raise TypeError(f"{name} must be one JAX random key, such as jax.random.key(0), got "
                    f"{_describe(key)}")


def check_array(name: str, x) -> None:
  """Raises a TypeError unless `x` is an array (JAX or NumPy, or a tracer); a list would
  be read by chex's assertions as a list of separate inputs, with a misleading message."""
  if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
    raise TypeError(f"{name} must be a JAX or NumPy array, got {_describe(x)}; convert it "
                    "with jnp.asarray")


def _describe(x) -> str:
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
  if isinstance(x, (list, tuple)):     # under jit its entries are tracers: not shown
    return f"a {type(x).__name__} of {len(x)} entries"
  return f"{type(x).__name__} {x!r}"[:120]


def check_nonnegative(name: str, value) -> None:
  """`check_hparam`: a finite number >= 0 (a strength, a margin, a weight)."""
  check_hparam(name, value, "a finite number >= 0", lambda v: 0 <= v < np.inf)


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


def as_float(x, like, name: str = "a hyperparameter"):
  """Casts a Python number or array hyperparameter to the dtype of `like`; a concrete
  finite value that the cast makes infinite (1e39 in float32) is a ValueError, `name`
  naming it (an infinite strength times a zero penalty made the objective NaN)."""
  dtype = jnp.result_type(like)
  if (not isinstance(x, jax.core.Tracer) and np.ndim(x) == 0
      and jnp.issubdtype(dtype, jnp.inexact)):     # checked on the host: no tracer
    v = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
      held = v.astype(np.dtype(dtype))
    if np.isfinite(v) and not np.isfinite(held):
      raise ValueError(f"{name} {float(v):g} is infinite in {np.dtype(dtype).name}, the dtype "
                       f"it is computed in; give at most {float(jnp.finfo(dtype).max):.3g}")
  return jnp.asarray(x, dtype=dtype)


def wide_ints_as_float32(x):
  """`x`, or for a NumPy array of 64-bit integers while 64-bit JAX is off, `x` as float32
  (converted on the host): `jnp.asarray` would wrap them to 32 bits (2**33 + 5 became 5)
  before a later cast to float could see them."""
  if (isinstance(x, np.ndarray) and x.dtype in (np.int64, np.uint64)
      and not jax.config.jax_enable_x64):
    return x.astype(np.float32)
  return x


def repeated(values: Sequence) -> list:
  """The values of `values` that an earlier one equals, in order: a list that names a
  setting twice would train (or cross-validate) it twice for nothing."""
  return [v for i, v in enumerate(values) if v in values[:i]]


def working_float(dtype) -> np.dtype:
  """The dtype rows of `dtype` are computed in: their own if a float of 32 bits or more,
  else float32. Integer rows (uint8 pixels) would sum or average in integers, and float16
  and bfloat16 sums overflow past 65,504."""
  dtype = jnp.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits >= 32:
    return dtype
  return jnp.dtype(jnp.float32)


def first_nonfinite_row(x) -> int | None:
  """The index of the first row of `x` (concrete) that holds a NaN or an infinity, or None
  when every value is finite. Rows in host memory (NumPy arrays, memory maps, and device
  arrays on a CPU, whose memory is the host's) are checked on the host, a block of rows at
  a time: a NaN or an infinity anywhere in a block is its min or max, so no mask is made
  and each block is read once. Rows on an accelerator are checked by one small program;
  op by op, the check compiled two per shape."""
  if isinstance(x, jax.Array) and any(d.platform != "cpu" for d in x.devices()):
    if bool(_all_finite(x)):
      return None
  rows = np.asarray(x)
  if not rows.size:       # no values (no rows): reshape(0, -1) cannot infer a width
    return None
  rows = rows.reshape(rows.shape[0] if rows.ndim else 1, -1)     # a scalar is one row
  step = max(1, _BLOCK_BYTES // max(1, rows[:1].nbytes))
  for i in range(0, rows.shape[0], step):
    block = rows[i:i + step]
    if block.size and not (np.isfinite(block.min()) and np.isfinite(block.max())):
      return i + int(np.argmax(~np.isfinite(block).all(axis=1)))
  return None


_BLOCK_BYTES = 1 << 24    # of the rows `first_nonfinite_row` reads at a time


@jax.jit
def _all_finite(x):
  # A sum XLA fuses: no (N, D) mask beside the rows, as jnp.isfinite(x).all() made on a
  # CPU (x * 0 is 0 for a finite value, NaN for a NaN or an infinity; the sum keeps NaN).
  return jnp.sum(x * 0) == 0
