"""Optimizers and learning-rate schedules by name, built on optax.

Every numeric hyperparameter (learning rate, momentum, Adam's betas, RMSProp's decay,
the schedule's decay factor) enters as a value that may be a traced array, and the
optimizer is wrapped in `optax.inject_hyperparams`, so the values live in the optimizer
state. A whole population of optimizers with different hyperparameters is then one
`vmap` away, compiled once.

Schedules count optimizer steps; `steps_per_epoch` converts the epoch-based settings.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lincv._checks import check_hparam, check_name, check_nonnegative

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "cosine")


def _held(value) -> np.ndarray:
  """A concrete value as optax's state holds it: in JAX's canonical dtype (float32 unless
  float64 is enabled)."""
  held = np.asarray(value)
  with np.errstate(over="ignore", under="ignore"):
    return held.astype(jax.dtypes.canonicalize_dtype(held.dtype))


def _check_positive(name: str, value, valid: str = "a finite number > 0") -> None:
  check_hparam(name, value, valid, lambda v: 0 < v < float("inf"))
  held = None if isinstance(value, jax.core.Tracer) else _held(value)
  if held is not None and jnp.issubdtype(held.dtype, jnp.floating):
    tiny, top = np.finfo(held.dtype).tiny, np.finfo(held.dtype).max
    # 1e-50 is 0 in float32 (no step, or 0 / 0), 1e39 infinite; XLA on CPU flushes a
    # subnormal (1e-40) to 0 as it computes.
    if not tiny <= held <= top:
      became = "0" if held < tiny else "infinite"
      raise ValueError(f"{name} {float(value)!r} is {became} in {held.dtype.name}, the dtype "
                       f"optax holds it in; give a value in [{tiny:.3g}, {top:.3g}]")


def _check_decay_rate(name: str, value) -> None:
  check_hparam(name, value, "in [0, 1)", lambda v: 0 <= v < 1)
  if not isinstance(value, jax.core.Tracer):
    held = _held(value)        # in the dtype optax's state holds it in
    if held >= 1:
      below = float(np.nextafter(np.ones((), held.dtype), 0))
      raise ValueError(f"{name} {float(value)!r} is 1 in {held.dtype.name}, and a decay rate "
                       f"of 1 never forgets; give at most {below!r}")


def _check_decay_factor(name: str, value) -> None:
  # A factor above 1 made the rate grow each epoch; 1 keeps it constant.
  check_hparam(name, value, "in (0, 1] (the factor the rate is multiplied by)",
               lambda v: 0 < v <= 1)


def check_schedule(kind: str, *, total_epochs: int, decay_every: int = 1,
                   warmup_epochs: int = 0) -> None:
  """Raises a ValueError when schedule `kind` would not change the rate within the run.

  The warm-up comes first, so a decaying schedule needs `warmup_epochs < total_epochs`,
  and a step schedule, whose first step comes `decay_every` epochs after the warm-up,
  needs `warmup_epochs + decay_every < total_epochs`: otherwise `decay` does nothing and
  members that differ only in it train alike.
  """
  if warmup_epochs > total_epochs:
    raise ValueError(f"warmup_epochs ({warmup_epochs}) is longer than the run "
                     f"(total_epochs {total_epochs}): the rate would never reach its peak")
  if kind == "step" and warmup_epochs + decay_every >= total_epochs:
    raise ValueError(
        f"schedule 'step' with decay_every {decay_every} and warmup_epochs {warmup_epochs} "
        f"never steps in a run of {total_epochs} epochs: its first step comes after epoch "
        f"warmup_epochs + decay_every, which must be less than epochs (or use 'constant')")
  if kind in ("exponential", "cosine") and warmup_epochs >= total_epochs:
    raise ValueError(
        f"schedule {kind!r} never decays: its warm-up of {warmup_epochs} epochs fills the "
        f"run of {total_epochs}; warmup_epochs must be less than epochs (or use 'constant')")


def schedule(kind: str, learning_rate, *, steps_per_epoch: int, total_epochs: int,
             decay=0.5, decay_every: int = 1, warmup_epochs: int = 0) -> optax.Schedule:
  """A learning-rate schedule (step count -> learning rate).

  Args:
    kind: one of SCHEDULES:
      constant: `lr`;
      step: `lr * decay ** floor(epoch / decay_every)`, epoch = step // steps_per_epoch;
      exponential: `lr * decay ** (step / steps_per_epoch)`, a smooth per-epoch decay;
      cosine: `optax.cosine_decay_schedule` from `lr` to 0 over the run.
    learning_rate: the peak rate, > 0 (may be traced).
    steps_per_epoch: optimizer steps in one epoch.
    total_epochs: length of the run, for the cosine schedule.
    decay: the multiplicative factor of the step and exponential schedules, in (0, 1] (may
      be traced; `optax.exponential_decay` checks its factor in Python, so it cannot take a
      traced one, hence the two one-line schedules here).
    decay_every: epochs between steps of the step schedule.
    warmup_epochs: if positive, a linear warm-up over that many epochs first: step t of
      its W steps takes `lr * (t + 1) / W`, so its first step moves (a ramp from 0 made
      step 0 a no-op, and with one step an epoch, the whole first epoch) and its last
      takes `lr`. The schedule above then starts, counting its steps and epochs from
      the end of the warm-up (`optax.join_schedules`); the cosine spans what is left of
      the run.
  """
  check_name("schedule", kind, SCHEDULES)
  _check_positive("learning_rate", learning_rate)
  _check_decay_factor("decay", decay)
  counts = dict(steps_per_epoch=steps_per_epoch, total_epochs=total_epochs,
                decay_every=decay_every, warmup_epochs=warmup_epochs)
  for field, count in counts.items():
    if isinstance(count, bool) or int(count) != count:
      raise ValueError(f"schedule needs an integer {field}, got {count!r}")
  if steps_per_epoch < 1 or total_epochs < 1 or decay_every < 1 or warmup_epochs < 0:
    raise ValueError(
        f"schedule needs steps_per_epoch, total_epochs, decay_every >= 1 and "
        f"warmup_epochs >= 0; got {steps_per_epoch}, {total_epochs}, {decay_every}, "
        f"{warmup_epochs}")
  check_schedule(kind, total_epochs=total_epochs, decay_every=decay_every,
                 warmup_epochs=warmup_epochs)
  warmup = warmup_epochs * steps_per_epoch
  if kind == "constant":
    main = optax.constant_schedule(learning_rate)
  elif kind == "step":
    period = decay_every * steps_per_epoch
    main = lambda count: learning_rate * decay ** jnp.floor_divide(count, period)
  elif kind == "exponential":
    main = lambda count: learning_rate * decay ** (count / steps_per_epoch)
  else:
    main = optax.cosine_decay_schedule(
        learning_rate, decay_steps=max(total_epochs * steps_per_epoch - warmup, 1))
  if warmup == 0:
    return main
  ramp = lambda count: learning_rate * jnp.minimum(count + 1, warmup) / warmup
  return optax.join_schedules([ramp, main], [warmup])


def make(name: str, learning_rate, *, momentum=0.9, b1=0.9, b2=0.999, rms_decay=0.9,
         eps=1e-8) -> optax.GradientTransformation:
  """Optimizer `name` in OPTIMIZERS, with its hyperparameters injected into its state.

  Args:
    name: sgd, momentum (heavy ball), nesterov, adam, rmsprop or adagrad.
    learning_rate: a number, an array or an optax schedule.
    momentum: for momentum and nesterov.
    b1, b2: Adam's moment decay rates.
    rms_decay: RMSProp's squared-gradient decay rate.
    eps: the stabiliser of adam, rmsprop and adagrad: > 0 for adam and rmsprop (they
      divide by sqrt(v) + eps, resp. sqrt(v + eps), where v is 0 for a weight whose
      gradients have all been 0, and 0 / 0 is NaN), >= 0 for adagrad (its accumulator
      starts at 0.1).

  Concrete values out of range (a learning rate <= 0, a decay rate outside [0, 1), NaN,
  a value that is 0 or infinite in the dtype optax holds it in) raise ValueError; traced
  ones cannot be checked here.

  Returns:
    an optax transformation whose state's `hyperparams` hold the values as arrays.
  """
  check_name("optimizer", name, OPTIMIZERS)
  if not callable(learning_rate):
    _check_positive("learning_rate", learning_rate)
  for field, value in dict(momentum=momentum, b1=b1, b2=b2, rms_decay=rms_decay).items():
    _check_decay_rate(field, value)
  if name in ("adam", "rmsprop"):
    _check_positive("eps", eps, f"a finite number > 0 for {name} (eps = 0 divides 0 by 0, "
                    "a NaN weight, where a weight's gradients have all been 0)")
  else:
    check_nonnegative("eps", eps)
  inject = optax.inject_hyperparams
  if name == "sgd":
    return inject(optax.sgd)(learning_rate=learning_rate)
  if name in ("momentum", "nesterov"):
    return inject(optax.sgd, static_args=("nesterov",))(
        learning_rate=learning_rate, momentum=momentum, nesterov=name == "nesterov")
  if name == "adam":
    return inject(optax.adam)(learning_rate=learning_rate, b1=b1, b2=b2, eps=eps)
  if name == "rmsprop":
    return inject(optax.rmsprop)(learning_rate=learning_rate, decay=rms_decay, eps=eps)
  return inject(optax.adagrad)(learning_rate=learning_rate, eps=eps)
