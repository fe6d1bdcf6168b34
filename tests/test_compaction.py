"""Members that stop leave the population: halving's survivors train as a smaller one, with
the numbers they would have had among frozen members, bit for bit, resumed or not, in
the one program the group compiled."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from lincv import config as config_lib
from lincv import sweep
from lincv import training
from lincv.sweep import compaction, population
from _faults import outcome, resumes_at_every_write, share_populations

HERE = os.path.dirname(os.path.abspath(__file__))


def _data():
  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x / 16.0 - 0.3, jnp.float32)
  y = jnp.asarray(y, jnp.int32)
  return training.Data(x[:900], y[:900], x[900:1200], y[900:1200])


def _config(rungs, eta, **sweep_fields):
  c = config_lib.base()
  c.optimizer, c.epochs, c.batch_size = "adam", 7, 64
  c.sweep = {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2], "reg_strength": [1e-4, 1e-2],
             **sweep_fields}
  c.halving.rungs, c.halving.eta = rungs, eta
  return c


def three_device_config():
  """The sweep `_halving_main.py` runs on three devices: 8 members, rungs after 2 and 4."""
  c = _config((2, 4), 2)
  c.epochs = 5
  return c


_COMPACTED_EPOCH = population.Population._compacted_epoch  # pylint: disable=protected-access


def _run(c, monkeypatch, compact, workdir=None):
  """(the sweep's outcome, the population sizes its compacted epochs trained)."""
  sizes = []
  compacted = _COMPACTED_EPOCH

  def spy(self, state, members, key, chunk, k_sub):
    sizes.append(k_sub)
    return compacted(self, state, members, key, chunk, k_sub)
  monkeypatch.setattr(population, "COMPACT", compact)
  monkeypatch.setattr(population.Population, "_compacted_epoch", spy)
  result = sweep.run(c, lambda _: _data(), 10, workdir=workdir)
  return outcome(result), sizes


def compiled_epochs(pop) -> dict:
  """{(chunk, counted): how many programs its epoch functions compiled} of a Population."""
  return {key: sum(f._cache_size() for f in fns)  # pylint: disable=protected-access
          for key, fns in pop._epochs.items()}    # pylint: disable=protected-access


def populations(monkeypatch) -> list:
  """The Populations built from now on, as they are built; the epoch programs they share
  with earlier populations are forgotten, so that `compiled_epochs` counts theirs."""
  population._epoch_program.cache_clear()    # pylint: disable=protected-access
  built, post_init = [], population.Population.__post_init__

  def spy(self):
    post_init(self)
    built.append(self)
  monkeypatch.setattr(population.Population, "__post_init__", spy)
  return built


@pytest.mark.parametrize("rungs,eta,seeds", [
    ((2, 4), 2, [0]),        # one data order: every batch gathered once
    ((1, 3), 3, [0, 1]),     # each member its own order
    ((2,), 4, [0]),
])
def test_halving_survivors_train_apart_with_the_frozen_members_numbers(
    rungs, eta, seeds, monkeypatch):
  c = _config(rungs, eta, seed=seeds)
  frozen, none = _run(c, monkeypatch, compact=False)
  compacted, sizes = _run(c, monkeypatch, compact=True)
  assert none == [] and sizes and min(sizes) < len(c.sweep.learning_rate) * 2 * len(seeds)
  assert compacted == frozen     # results.csv's rows, every history, the best parameters


def test_a_halving_sweep_killed_at_any_write_resumes_to_the_frozen_members_results(
    tmp_path, monkeypatch):
  c = _config((2, 4), 2)
  c.checkpoint_seconds = 0     # a commit after every epoch: each is a place to be killed
  frozen, _ = _run(c, monkeypatch, compact=False)
  share_populations(monkeypatch)
  monkeypatch.setattr(population, "COMPACT", True)
  run = lambda workdir: sweep.run(c, lambda _: _data(), 10, workdir=str(workdir))
  reference, ops, differ = resumes_at_every_write(run, tmp_path)
  assert reference == frozen and ops >= 7
  assert differ == [], f"killed at these operations, the resumed run differs: {differ}"


def test_without_halving_the_population_keeps_its_chunks():
  """No halving, no compaction: the group is chunked as before (one chunk up to 64)."""
  c = _config((), 2)
  (group,) = sweep.group(sweep.expand(c))
  pop = sweep.Population(group, _data(), 10)
  assert pop.chunk == 8 and pop.k_pad == 8 and not pop._compacts  # pylint: disable=protected-access
  halving = sweep.Population(group, _data(), 10, min_members=2)
  assert halving.chunk == 2 and halving.k_pad == 8
  np.testing.assert_array_equal(halving.hparams["learning_rate"], pop.hparams["learning_rate"])


def test_a_halving_group_scores_its_members_in_the_widest_chunks():
  """Halving trains in chunks of the fewest members it keeps (2 here, so 5 members are
  padded to 6); their final accuracy is a pass over the rows per chunk, so it is computed
  in the chunks of the group without halving (one of 5), each member's its own."""
  c = _config((), 2)
  c.sweep = {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
  (group,) = sweep.group(sweep.expand(c))
  data = _data()
  pop = sweep.Population(group, data, 10, min_members=2)
  assert (pop.chunk, pop.k_pad, pop._eval_chunk, pop._eval_pad) == (2, 6, 5, 5)  # pylint: disable=protected-access
  state = pop.init()
  for _ in range(2):
    state, _ = pop.epoch(state)
  got = pop.accuracy(state.params, pop.data.x_train, pop.data.y_train)
  params = jax.tree.map(np.asarray, state.params)
  want = [float(training.accuracy(group.structure, {k: v[j] for k, v in params.items()},
                                  data.x_train, data.y_train)) for j in range(5)]
  assert got.shape == (5,) and len(set(want)) > 2   # members that differ, in their order
  np.testing.assert_allclose(got, want, atol=1.5 / 900)   # one row's tie at most


@pytest.mark.parametrize("seeds", [[0], [0, 1]])   # one data order; each member its own
def test_every_population_size_of_a_halving_run_is_one_compiled_epoch_program(
    seeds, monkeypatch):
  """Rungs after epochs 1, 2 and 4 train 8, 4, 2 and 1 chunks of each group (of two)."""
  c = _config((1, 2, 4), 2, seed=seeds, optimizer=["sgd", "adam"])
  built = populations(monkeypatch)
  _, sizes = _run(c, monkeypatch, compact=True)
  assert len(set(sizes)) == 3 and len(built) == 2
  for pop in built:
    assert compiled_epochs(pop) == {(pop.chunk, True): 1}


@pytest.mark.parametrize("m,chunk,devices,k_pad,counts", [
    (5, 2, 1, 8, [3]),
    (4, 2, 3, 12, [1, 1, 0]),
    (5, 2, 2, 12, [2, 1]),
    (1, 4, 4, 32, [1, 0, 0, 0]),
])
def test_the_active_members_fill_each_devices_first_chunks(m, chunk, devices, k_pad, counts):
  source, slots, got = compaction.layout(m, chunk, devices, k_pad)
  assert got.tolist() == counts
  np.testing.assert_array_equal(source[slots], np.arange(m))   # each member in its slot
  per_device = k_pad // devices
  device, place = slots // per_device, slots % per_device
  assert (place < got[device] * chunk).all()   # in a chunk its device computes
  assert len(set(slots)) == m and source.size == k_pad


def test_on_three_devices_halving_compacts_to_the_frozen_members_results():
  """The active chunks spread over the devices (4 chunks of 2 on 3 devices, 2 after the
  first rung, 1 after the second), each device with its own count; the same results as
  frozen members on those devices and on one, from one compiled program per group."""
  script = os.path.join(HERE, "_halving_main.py")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=3")
  out = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env,
                       check=True, timeout=300).stdout
  got = json.loads(out.splitlines()[-1])
  assert jax.device_count() == 1
  with pytest.MonkeyPatch.context() as monkeypatch:
    one, _ = _run(three_device_config(), monkeypatch, compact=False)
  assert got["devices"] == 3 and got["sizes"] and got["compiled"] == [1]
  assert got["compacted"] == got["frozen"] == json.loads(json.dumps(one))
