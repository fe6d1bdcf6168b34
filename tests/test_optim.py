"""optim: injected optimizers follow plain optax; schedules; hyperparameters as arrays."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

from lincv import optim

PLAIN = {
    "sgd": lambda: optax.sgd(0.1),
    "momentum": lambda: optax.sgd(0.1, momentum=0.8),
    "nesterov": lambda: optax.sgd(0.1, momentum=0.8, nesterov=True),
    "adam": lambda: optax.adam(0.1, b1=0.8, b2=0.99),
    "rmsprop": lambda: optax.rmsprop(0.1, decay=0.7),
    "adagrad": lambda: optax.adagrad(0.1),
}


def _trajectory(opt, steps=20):
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  loss = lambda p: jnp.sum(p["w"] ** 4) + jnp.sum(p["w"])
  state = opt.init(params)
  out = []
  for _ in range(steps):
    updates, state = opt.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
    out.append(params["w"])
  return np.stack(out), state


class OptimizerTest(parameterized.TestCase):

  @parameterized.parameters(*optim.OPTIMIZERS)
  def test_injected_follows_plain_optax(self, name):
    injected = optim.make(name, jnp.asarray(0.1), momentum=jnp.asarray(0.8),
                          b1=jnp.asarray(0.8), b2=jnp.asarray(0.99),
                          rms_decay=jnp.asarray(0.7), eps=1e-8 if name != "adagrad" else 1e-7)
    got, state = _trajectory(injected)
    want, _ = _trajectory(PLAIN[name]())
    # float32: the injected values are float32 arrays where plain optax keeps Python
    # floats, so the two trajectories round apart by a few ulps of the largest weight.
    atol = 16 * np.finfo(np.float32).eps * np.max(np.abs(want[np.isfinite(want)]))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    self.assertIn("learning_rate", state.hyperparams)
    self.assertIsInstance(state.hyperparams["learning_rate"], jax.Array)

  def test_vmap_over_learning_rates(self):
    def final(lr):
      return _trajectory_jax(optim.make("momentum", lr, momentum=0.9))
    lrs = jnp.array([0.01, 0.05, 0.1])
    stacked = jax.vmap(final)(lrs)
    for i, lr in enumerate(lrs):
      np.testing.assert_allclose(stacked[i], final(lr), rtol=1e-12)

  def test_unknown_optimizer(self):
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; expected one of: sgd"):
      optim.make("adamw", 0.1)


def _trajectory_jax(opt):
  params = jnp.array([1.0, -2.0])
  state = opt.init(params)

  def step(carry, _):
    p, s = carry
    u, s = opt.update(2 * p, s, p)
    return (p + u, s), None
  return jax.lax.scan(step, (params, state), None, length=10)[0][0]


class ScheduleTest(parameterized.TestCase):

  def _values(self, kind, **kw):
    sched = optim.schedule(kind, 1.0, steps_per_epoch=10, total_epochs=5, **kw)
    return np.array([float(sched(t)) for t in (0, 9, 10, 25, 49)])

  def test_constant(self):
    np.testing.assert_allclose(self._values("constant"), 1.0)

  def test_step(self):
    np.testing.assert_allclose(self._values("step", decay=0.5, decay_every=2),
                               [1, 1, 1, 0.5, 0.25])

  def test_exponential(self):
    np.testing.assert_allclose(self._values("exponential", decay=0.5),
                               0.5 ** (np.array([0, 9, 10, 25, 49]) / 10), rtol=1e-6)

  def test_cosine(self):
    v = self._values("cosine")
    np.testing.assert_allclose(v[0], 1.0)
    np.testing.assert_allclose(v[3], 0.5 * (1 + np.cos(np.pi * 25 / 50)), rtol=1e-6)

  def test_warmup(self):
    # Step t of the 10 warm-up steps takes 2 (t + 1) / 10: the first moves, the last is 2.
    sched = optim.schedule("constant", 2.0, steps_per_epoch=10, total_epochs=5,
                           warmup_epochs=1)
    np.testing.assert_allclose([float(sched(t)) for t in (0, 4, 9, 10, 30)],
                               [0.2, 1, 2, 2, 2], rtol=1e-6)

  def test_warmup_of_one_step_an_epoch_moves_in_its_first_epoch(self):
    sched = optim.schedule("constant", 1.0, steps_per_epoch=1, total_epochs=4,
                           warmup_epochs=2)
    np.testing.assert_allclose([float(sched(t)) for t in range(4)], [0.5, 1, 1, 1])

  def test_step_decay_counts_its_epochs_from_the_end_of_the_warmup(self):
    sched = optim.schedule("step", 1.0, steps_per_epoch=1, total_epochs=5, decay=0.5,
                           warmup_epochs=2)
    np.testing.assert_allclose([float(sched(t)) for t in range(5)], [0.5, 1, 1, 0.5, 0.25])

  def test_traced_decay(self):
    f = jax.vmap(lambda d: optim.schedule("step", 1.0, steps_per_epoch=1, total_epochs=3,
                                          decay=d)(2))
    np.testing.assert_allclose(f(jnp.array([0.5, 0.1])), [0.25, 0.01], rtol=1e-6)

  @parameterized.parameters("exponential", "cosine")
  def test_a_decay_that_the_warmup_fills_is_refused(self, kind):
    # The warm-up took every epoch, so the rate never decayed.
    with pytest.raises(ValueError, match=f"schedule '{kind}' never decays: its warm-up of 3 "
                                         "epochs fills the run of 3"):
      optim.schedule(kind, 1.0, steps_per_epoch=2, total_epochs=3, warmup_epochs=3)

  def test_a_factor_of_one_and_a_last_epoch_step_are_accepted(self):
    sched = optim.schedule("step", 1.0, steps_per_epoch=1, total_epochs=3, decay=0.5,
                           decay_every=1, warmup_epochs=1)
    np.testing.assert_allclose([float(sched(t)) for t in range(3)], [1, 1, 0.5])
    sched = optim.schedule("exponential", 1.0, steps_per_epoch=1, total_epochs=3, decay=1.0)
    np.testing.assert_allclose([float(sched(t)) for t in range(3)], [1, 1, 1])

  def test_unknown_schedule(self):
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
      optim.schedule("linear", 1.0, steps_per_epoch=1, total_epochs=1)

  @parameterized.parameters(
      # A warm-up of half an epoch ended mid-step (0.67, 1, 1, ... at 3 steps an epoch).
      (dict(warmup_epochs=0.5), "an integer warmup_epochs, got 0.5"),
      (dict(steps_per_epoch=2.5), "an integer steps_per_epoch, got 2.5"),
      (dict(decay_every=1.5), "an integer decay_every, got 1.5"),
      # A negative decay flipped the sign of every other epoch's rate; NaN made it NaN.
      (dict(decay=-0.5), "decay must be in (0, 1] (the factor the rate is multiplied by), "
                         "got -0.5"),
      (dict(decay=float("nan")), "decay must be in (0, 1] (the factor the rate is multiplied "
                                 "by), got nan"),
      (dict(learning_rate=-1.0), "learning_rate must be a finite number > 0, got -1.0"),
      (dict(learning_rate=0.0), "learning_rate must be a finite number > 0, got 0.0"),
      # A warm-up past the run's end never reached the rate: 0.04 of 0.1 at most.
      (dict(warmup_epochs=5), "warmup_epochs (5) is longer than the run (total_epochs 4)"),
      # A factor above 1 made the rate grow: 3 ** 3 = 27 times it by the last epoch.
      (dict(decay=3.0), "decay must be in (0, 1] (the factor the rate is multiplied by), got 3"),
      (dict(decay=float("inf")), "decay must be in (0, 1]"),
      # Steps after the run's last epoch: decay did nothing, so members differing in it
      # trained alike.
      (dict(decay_every=4), "schedule 'step' with decay_every 4 and warmup_epochs 0 never "
                            "steps in a run of 4 epochs"),
      (dict(decay_every=2, warmup_epochs=2), "with decay_every 2 and warmup_epochs 2 never"))
  def test_bad_settings_are_refused(self, kw, pattern):
    args = dict(learning_rate=1.0, steps_per_epoch=3, total_epochs=4, decay=0.5) | kw
    with pytest.raises(ValueError, match=re.escape(pattern)):
      optim.schedule("step", **args)


@pytest.mark.parametrize("kw, pattern", [
    # A negative rate climbed the loss, silently.
    (dict(learning_rate=-0.1), "learning_rate must be a finite number > 0, got -0.1"),
    (dict(learning_rate=float("nan")), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=jnp.ones(2)), "learning_rate must be a scalar, got shape (2,)"),
    (dict(momentum=1.0), "momentum must be in [0, 1), got 1.0"),
    (dict(b2=-0.1), "b2 must be in [0, 1), got -0.1"),
    (dict(rms_decay=float("nan")), "rms_decay must be in [0, 1), got nan"),
    # (> 0 for adam and rmsprop, >= 0 for the others; see the test of eps = 0 below)
    (dict(eps=-1e-8), "eps must be a finite number >"),
    # Below 1 in float64, 1 in float32: Adam divided by 1 - b2 ** t = 0.
    (dict(b2=0.99999999), "b2 0.99999999 is 1 in float32, and a decay rate of 1 never"),
])
@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_make_refuses_bad_hyperparameters(name, kw, pattern):
  with pytest.raises(ValueError, match=re.escape(pattern)):
    optim.make(name, **(dict(learning_rate=0.1) | kw))


def test_make_takes_a_schedule_and_traced_values():
  sched = optim.schedule("constant", 0.1, steps_per_epoch=1, total_epochs=1)
  assert optim.make("adam", sched).init(jnp.zeros(2)) is not None
  lr = jax.vmap(lambda lr: optim.make("sgd", lr).init(jnp.zeros(2)).hyperparams[
      "learning_rate"])(jnp.array([0.1, 0.2]))
  np.testing.assert_allclose(lr, [0.1, 0.2])


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
@pytest.mark.parametrize("eps", [0.0, 1e-46, 1e-40])
def test_adam_and_rmsprop_refuse_an_eps_that_is_0_where_it_is_held(name, eps):
  # They divide by sqrt(v) + eps (adam) or sqrt(v + eps) (rmsprop): with eps 0 (1e-46
  # underflows to 0 in float32; 1e-40 is a subnormal, which XLA on CPU flushes to 0), a
  # weight whose gradient was 0 took the update 0 / 0 = NaN, silently.
  opt = optax.adam(0.1, eps=eps) if name == "adam" else optax.rmsprop(0.1, eps=eps)
  assert np.isnan(opt.update(jnp.array([0.0, 1.0]), opt.init(jnp.zeros(2)))[0][0])
  with pytest.raises(ValueError, match=re.escape("eps must be a finite number > 0 for ")
                     if eps == 0 else re.escape(f"eps {eps!r} is 0 in float32")):
    optim.make(name, 0.1, eps=eps)


def test_adagrad_and_sgd_take_an_eps_of_0():
  # adagrad's accumulator starts at 0.1, so its denominator is never 0.
  for name in ("adagrad", "sgd"):
    opt = optim.make(name, 0.1, eps=0.0)
    updates, _ = opt.update(jnp.array([0.0, 1.0]), opt.init(jnp.zeros(2)))
    assert np.isfinite(updates).all()


@pytest.mark.parametrize("lr, became", [(1e-50, "0"), (1e-40, "0"), (1e39, "infinite")])
def test_a_learning_rate_that_float32_cannot_hold_is_refused(lr, became):
  # 1e-50 was 0 in float32 (no step at all), 1e39 infinite (NaN weights).
  message = f"learning_rate {lr!r} is {became} in float32, the dtype optax holds it in"
  with pytest.raises(ValueError, match=re.escape(message)):
    optim.make("sgd", lr)
  with pytest.raises(ValueError, match=re.escape(message)):
    optim.schedule("constant", lr, steps_per_epoch=1, total_epochs=1)
