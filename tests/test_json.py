"""Every JSON file lincv writes is strict JSON: no NaN or Infinity, which JSON does not have."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from lincv import checkpoint, experiment, sweep, training
from lincv import config as config_lib
from _sweep_main import blobs


def _refuse(constant):
  raise ValueError(f"not strict JSON: {constant}")


def strict_load(path):
  """Parses a file as RFC 8259 JSON: NaN, Infinity and -Infinity are errors."""
  with open(path) as f:
    return json.loads(f.read(), parse_constant=_refuse)


def test_save_json_refuses_non_finite_numbers_naming_the_field(tmp_path):
  path = tmp_path / "summary.json"
  for bad in (float("nan"), float("inf"), np.float32("-inf"), jnp.asarray([1.0, jnp.nan])):
    with pytest.raises(ValueError, match=r"summary.json: field best\.val_accuracy.* is .*"
                                         r"JSON holds only finite numbers"):
      checkpoint.save_json(str(path), {"best": {"val_accuracy": bad}})
    assert not path.exists()
  checkpoint.save_json(str(path), {"a": np.float32(0.5), "b": np.arange(2), "c": None})
  assert strict_load(path) == {"a": 0.5, "b": [0, 1], "c": None}


def test_save_json_null_for_non_finite_when_asked(tmp_path):
  path = tmp_path / "state.json"
  checkpoint.save_json(str(path), {"loss": [1.0, float("nan"), float("inf")]},
                       nonfinite="null")
  assert strict_load(path) == {"loss": [1.0, None, None]}
  assert checkpoint.dumps_line({"train_loss": float("inf")}) == '{"train_loss": null}'


def test_a_member_without_a_finite_loss_checkpoints_and_resumes(tmp_path):
  """init_scale 1e30 makes the first squared hinge loss overflow: the member diverges in
  its first step, so its loss and history are NaN; the sweep manifest stays strict JSON
  (the numbers live in its .npz files) and a rerun restores the same rows."""
  x, y = blobs(300)
  data = training.Data(jnp.asarray(x[:250]), jnp.asarray(y[:250]),
                       jnp.asarray(x[250:]), jnp.asarray(y[250:]))
  c = config_lib.base()
  c.epochs, c.batch_size, c.loss = 2, 50, "squared_svm"
  c.sweep = {"init_scale": [1e-3, 1e30]}
  first = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  assert first.rows[1]["status"] == "diverged" and math.isnan(first.rows[1]["final_loss"])
  saved = strict_load(tmp_path / "checkpoint" / "sweep.json")
  assert saved["groups"]["0"]["finished"] is True
  again = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  for a, b in zip(first.rows, again.rows):
    assert a.keys() == b.keys()
    for k in a:
      assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), k
  np.testing.assert_array_equal(np.asarray(again.history[1]["train_loss"], float),
                                np.asarray(first.history[1]["train_loss"], float))


def test_a_config_json_cannot_hold_is_refused_up_front():
  c = config_lib.base()
  c.diverge_factor = float("inf")
  with pytest.raises(experiment.ConfigError, match="field diverge_factor is inf"):
    experiment.check(c)
