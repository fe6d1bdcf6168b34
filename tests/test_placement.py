"""placement: training rows kept on the host train as rows on the device do, bit for bit."""

import types

import jax
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import experiment, placement, sweep, training
from lincv.data import digits

BATCH, BLOCK = 32, 7


@pytest.fixture(scope="module")
def digits_data():
  x, y = digits.arrays()
  x = x.reshape(len(x), -1).astype(np.float32) / 255.0
  return training.Data(x[:1500], y[:1500], x[1500:], y[1500:])


def _config(placement_name: str, order: str):
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer = 2, BATCH, "momentum"
  c.data.placement, c.data.block_steps = placement_name, BLOCK
  if order == "own":      # three seeds: each member its own data order
    c.sweep = {"seed": [0, 1, 2]}
  elif order == "blocks":   # two seeds of two members: a seed block each (one order)
    c.sweep = {"learning_rate": [1e-2, 1e-1], "seed": [0, 1]}
  else:                   # one order for every member
    c.sweep = {"learning_rate": [1e-3, 1e-2, 1e-1]}
    c.shuffle_seed = 5
  return c


@pytest.mark.parametrize("order", ["own", "blocks", "shared"])
def test_host_placement_trains_as_device_does(digits_data, order, tmp_path, monkeypatch):
  steps = training.steps_per_epoch(training.Structure(batch_size=BATCH), 1500)
  assert steps % BLOCK not in (0, 1)      # the last block is shorter
  blocks = []
  run_blocks = placement.run_blocks
  monkeypatch.setattr(placement, "run_blocks", lambda carry, fn, load, spans: (
      blocks.append([b - a for a, b in spans]), run_blocks(carry, fn, load, spans))[1])
  np.save(tmp_path / "x.npy", digits_data.x_train)    # host rows from a memory map
  on_host = digits_data._replace(x_train=np.load(tmp_path / "x.npy", mmap_mode="r"))

  device = sweep.run(_config("device", order), lambda f: digits_data, 10)
  assert not blocks
  host = sweep.run(_config("host", order), lambda f: on_host, 10)

  assert blocks == [[BLOCK] * (steps // BLOCK) + [steps % BLOCK]] * 2
  drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  assert drop(host.rows) == drop(device.rows)      # train accuracy, losses: identical
  assert host.history == device.history
  assert host.best == {**device.best, "seconds": host.best["seconds"]}
  for name, value in device.best_params.items():
    np.testing.assert_array_equal(host.best_params[name], value)


def test_blocks_cover_the_epoch_in_order_and_never_hold_one_step():
  assert placement.spans(46, 7) == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 35),
                                    (35, 42), (42, 46)]
  assert placement.spans(50, 7)[-2:] == [(35, 42), (42, 50)]    # 1 left: joins its block
  assert placement.spans(5, 8) == [(0, 5)] and placement.spans(1, 8) == [(0, 1)]


@pytest.mark.parametrize("field,value,message", [
    ("placement", "gpu", "unknown data.placement 'gpu'; expected one of: auto, device, host"),
    ("block_steps", 1, "data.block_steps must be 0 (blocks of about 64 MiB) or an integer "
                       ">= 2 (minibatches per block), got 1"),
])
def test_a_bad_placement_is_refused_with_one_line(field, value, message):
  c = config_lib.base()
  c.data[field] = value
  with pytest.raises(experiment.ConfigError) as e:
    experiment.check(c)
  assert str(e.value) == message


class _Device:
  def __init__(self, limit, in_use):
    self.stats = {"bytes_limit": limit, "bytes_in_use": in_use}

  def memory_stats(self):
    return self.stats


def test_auto_picks_device_for_small_data_and_host_for_rows_that_do_not_fit(digits_data):
  assert placement.resolve("auto", 10 << 30, jax.devices("cpu")) == "device"  # no stats
  small = [_Device(1000, 200), _Device(2000, 0)]     # the least free: 800 bytes
  assert placement.resolve("auto", 400, small) == "device"
  assert placement.resolve("auto", 401, small) == "host"
  assert placement.resolve("host", 1, small) == "host"
  assert placement.resolve("device", 10**6, small) == "device"
  (g,) = sweep.group(sweep.expand(_config("auto", "shared")))
  pop = sweep.Population(g, digits_data, 10)
  assert pop.placement == "device" and isinstance(pop.data.x_train, jax.Array)


def test_placement_is_resumable_and_block_steps_does_nothing_on_the_device():
  a, b = config_lib.base(), config_lib.base()
  b.data.placement, b.data.block_steps = "host", 4
  assert config_lib.differences(a, b) == []        # a run may resume on another placement
  b.data.limit = 10
  assert config_lib.differences(a, b) == ["data"]
  a.data.placement = "device"
  assert "does nothing here" in config_lib.idle_override(a, "data.block_steps", [])
  a.method = "knn"
  assert "does nothing here" in config_lib.idle_override(a, "data.placement", [])


def test_the_bench_times_a_host_epoch_against_a_device_epoch(digits_data, monkeypatch):
  from bench import common, sweep as bench_sweep  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(common, "SETTLE_S", 0.0)   # no rest: no time is compared here
  d = digits_data
  prepared = types.SimpleNamespace(x_train=d.x_train, y_train=d.y_train, x_val=d.x_val,
                                   y_val=d.y_val, class_names=digits.CLASS_NAMES)
  out = bench_sweep.measure_placement(prepared, 3, reps=1, warmup=0, batch_size=BATCH,
                                      block_steps=BLOCK)
  assert out["block_steps"] == BLOCK and out["steps_per_epoch"] == 46
  assert out["host_over_device"] > 0 and out["max_abs_param_diff"] == 0.0
