"""optim: injected optimizers follow plain optax; schedules; hyperparameters as arrays."""

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

  def test_unknown_schedule(self):
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
      optim.schedule("linear", 1.0, steps_per_epoch=1, total_epochs=1)
