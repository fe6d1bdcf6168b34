"""How precisely float32 matrix products are computed: in float32, unless a run asks otherwise.

JAX leans toward speed on accelerators: left to its default, a float32 product on a
recent NVIDIA GPU runs on TensorFloat-32 (10 bits of mantissa) and on a TPU as one
bfloat16 pass (8 bits), about three significant digits either way. A CPU computes in
float32 whatever the setting. A float32 finite-difference gradient check, a Gram matrix
or an L-BFGS stopping test at 1e-6 would then be wrong on the accelerator and right on
the laptop, without a word. So lincv sets the precision itself:

  * A run's products follow `config.matmul_precision`: "float32" (the default, the
    same numbers as on a CPU), or "tensorfloat32" / "bfloat16" for the speed of the
    reduced modes in minibatch training (`scope`, which `lincv.experiment.run`,
    `lincv.sweep.run` and `lincv.runs.Run` enter).
  * What is compared to a tolerance or cached for every run computes in float32
    whatever the caller set (`exact`): gradient checks
    (`lincv.gradcheck`, `lincv.testing`), the closed-form ridge path, the full-batch
    L-BFGS solver, k-NN distances and the image features.

The setting is read when a function is traced, so `exact` inside a jitted function
makes that function's products float32 wherever it is called from.
"""

import contextlib

import jax

PRECISIONS = ("float32", "tensorfloat32", "bfloat16")  # JAX's names, most precise first


def check(name: str) -> str:
  """`name` if it is one of `PRECISIONS`; else a ValueError that lists them."""
  if name not in PRECISIONS:
    raise ValueError(f"unknown matmul_precision {name!r}; expected one of: "
                     f"{', '.join(PRECISIONS)} (float32: exact float32 products; the other "
                     "two: an accelerator's faster reduced modes)")
  return name


def of(config) -> str:
  """The precision a run's config asks for (`config.matmul_precision`, "float32" where it
  has none), checked as `check` checks it."""
  return check(config.get("matmul_precision", "float32"))


def scope(name: str = "float32") -> contextlib.AbstractContextManager:
  """Float32 matrix products are computed at precision `name` within it."""
  return jax.default_matmul_precision(check(name))


@contextlib.contextmanager
def run_scope(config):
  """A run's arithmetic: 64-bit JAX if `config.dtype` is "float64", and its float32
  products at `config.matmul_precision` (checked: a ValueError names the valid ones)."""
  name = of(config)
  with jax.enable_x64(config.get("dtype") == "float64"), jax.default_matmul_precision(name):
    yield


def exact() -> contextlib.AbstractContextManager:
  """Float32 matrix products within it, whatever the caller's setting."""
  return jax.default_matmul_precision("float32")


def current() -> str | None:
  """The precision float32 products get here and now (None: JAX's default)."""
  return jax.config.jax_default_matmul_precision


@contextlib.contextmanager
def float32():
  """32-bit JAX with float32 products (`exact`): how image features are computed, so that
  they are the same in every run (float32 or float64) and on every device, as their cache
  assumes."""
  with jax.enable_x64(False), exact():
    yield
