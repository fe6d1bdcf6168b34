"""sweep: expansion, grouping, halving, divergence isolation, devices, resume, bad specs."""

import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lincv import config as config_lib
from lincv import checkpoint, lbfgs, report, sweep, training
from lincv.progress import Progress
from lincv.sweep import selection
from _faults import Killed, KillAt, resumes_at_every_write, share_populations
import _sweep_main
from _sweep_main import blobs

HERE = os.path.dirname(__file__)


def _data():
  x, y = blobs(600)
  return training.Data(jnp.asarray(x[:500]), jnp.asarray(y[:500]),
                       jnp.asarray(x[500:]), jnp.asarray(y[500:]))


def _config(**sweep_spec):
  c = config_lib.base()
  c.epochs, c.batch_size, c.optimizer = 6, 50, "momentum"
  c.sweep = sweep_spec
  return c


# ------------------------------------------------------------------ expansion, grouping


def test_grid_expansion():
  members = sweep.expand(_config(learning_rate=[0.1, 0.01], reg_strength=[0.0, 1e-3, 1e-2],
                                 loss=["svm", "softmax"]))
  assert len(members) == 12
  combos = {(m["learning_rate"], m["reg_strength"], m["loss"]) for m in members}
  assert len(combos) == 12
  assert all(m["optimizer"] == "momentum" for m in members)


def test_random_expansion_is_seeded_and_in_range():
  c = _config(learning_rate={"log_uniform": [1e-4, 1e-1]}, momentum={"uniform": [0.5, 0.9]},
              optimizer={"choice": ["momentum", "nesterov"]})
  c.search, c.num_samples = "random", 40
  a, b = sweep.expand(c), sweep.expand(c)
  assert a == b and len(a) == 40
  lrs = np.array([m["learning_rate"] for m in a])
  assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1 and lrs.min() < 1e-3 < lrs.max()
  assert all(0.5 <= m["momentum"] <= 0.9 for m in a)
  assert {m["optimizer"] for m in a} == {"momentum", "nesterov"}
  c.search_seed = 1
  assert sweep.expand(c) != a


def test_grouping_splits_structural_fields_only():
  members = sweep.expand(_config(learning_rate=[0.1, 0.01], seed=[0, 1], reg=["l2", "l1"],
                                 batch_size=[25, 50]))
  groups = sweep.group(members)
  assert len(groups) == 4
  for g in groups:
    assert g.size == 4
    assert g.hparams["learning_rate"].shape == (4,)
    assert g.hparams["seed"].dtype == np.uint32
    assert {members[i]["reg"] for i in g.members} == {g.structure.reg}


@pytest.mark.parametrize("spec,message", [
    ({"lr": [0.1]}, "unknown sweep field 'lr'; expected one of: model, loss"),
    ({"optimizer": ["adamw"]}, "unknown optimizer 'adamw'; expected one of: sgd, momentum"),
    ({"learning_rate": [0.1, 0.0]}, "learning_rate must be a finite number > 0, got 0.0"),
    ({"learning_rate": []}, "sweep field 'learning_rate' has no values: the grid is empty"),
    ({"learning_rate": {"log_uniform": [1e-3, 1e-1]}}, "log_uniform needs search='random'"),
    ({"loss": ["hinge"]}, "unknown loss 'hinge'; expected one of: svm, squared_svm, softmax"),
    ({"warmup_epochs": [1, 9]}, "warmup_epochs (9) is longer than the run (total_epochs 6)"),
    # A step schedule that never stepped trained every lr_decay alike, with no word.
    ({"schedule": ["step"], "decay_every": [2, 6]},
     "schedule 'step' with decay_every 6 and warmup_epochs 0 never steps in a run of 6"),
    ({"schedule": ["cosine"], "warmup_epochs": [6]}, "schedule 'cosine' never decays"),
    # A factor above 1 made the rate grow every epoch.
    ({"schedule": ["step"], "lr_decay": [0.5, 3.0]}, "lr_decay must be in (0, 1] (the factor"),
    ({"schedule": ["exponential"], "lr_decay": [float("inf")]}, "lr_decay must be in (0, 1]"),
])
def test_bad_specifications(spec, message):
  with pytest.raises(sweep.SweepError, match=re.escape(message)) as e:
    sweep.expand(_config(**spec))
  assert "\n" not in str(e.value)


def test_a_random_search_over_lists_draws_no_setting_twice():
  # 8 draws from 2 x 2 settings trained 8 members, 4 of them again for nothing.
  c = _config(loss=["svm", "softmax"], learning_rate=[0.01, 0.1, 0.3])
  c.search, c.num_samples = "random", 6
  members = sweep.expand(c)
  settings = [(m["loss"], m["learning_rate"]) for m in members]
  assert len(set(settings)) == len(settings) == 6
  c.num_samples = 7
  with pytest.raises(sweep.SweepError, match=re.escape(
      "num_samples 7 exceeds the 6 distinct settings of a random search over lists of "
      "values; lower num_samples, or use search='grid' for all of them")):
    sweep.expand(c)


def test_a_random_search_refuses_a_value_listed_twice():
  # Drawn by repr, 32 and 32.0 were two settings: one member trained twice.
  c = _config(batch_size=[32, 32.0])
  c.search, c.num_samples = "random", 2
  with pytest.raises(sweep.SweepError, match=re.escape(
      "sweep.batch_size lists 32.0 twice; list each value once")):
    sweep.expand(c)


@pytest.mark.parametrize("kind", ["uniform", "log_uniform"])
def test_a_distribution_with_an_infinite_bound_is_refused(kind):
  # 1e400 parses as inf: the draw raised NumPy's OverflowError.
  c = _config(learning_rate={kind: [1e-3, float("inf")]})
  c.search, c.num_samples = "random", 3
  with pytest.raises(sweep.SweepError, match=re.escape(
      f"sweep field 'learning_rate': {kind} needs a numeric field and [low, high], finite, "
      "with low < high, got [0.001, inf]")):
    sweep.expand(c)


@pytest.mark.parametrize("field, optimizer", [("b2", "adam"), ("momentum", "momentum")])
def test_a_decay_rate_that_is_1_in_the_rows_dtype_is_refused(field, optimizer):
  # 0.99999999 passed the [0, 1) check in float64 and was 1.0 in float32: every Adam
  # member then "diverged", with advice to lower the learning rate.
  c = _config(**{field: [0.9, 0.99999999]})
  c.optimizer = optimizer
  with pytest.raises(sweep.SweepError, match=re.escape(
      f"{field} 0.99999999 is 1 in float32, the dtype of the rows the sweep computes in, "
      "and a decay rate of 1 never forgets; give at most 0.9999999403953552, or float64")):
    sweep.run(c, lambda f: _data(), 4)


def test_batch_size_larger_than_data():
  c = _config(batch_size=[1000])
  with pytest.raises(sweep.SweepError, match="batch_size 1000 is larger than the 500"):
    sweep.run(c, lambda f: _data(), 4)


@pytest.mark.parametrize("optimizer", ["momentum", "lbfgs", "closed_form"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_a_split_without_rows_is_refused(optimizer, split):
  # Without validation rows every member kept its initial parameters at accuracy 0 (SGD),
  # or NaN (lbfgs); without training rows lbfgs said every member diverged.
  data = training.Data(*(a[:0] if name.endswith(split) else a
                         for name, a in zip(training.Data._fields, _data())))
  c = _config(reg_strength=[1e-3, 1e-2])
  c.optimizer, c.loss = optimizer, "least_squares" if optimizer == "closed_form" else c.loss
  with pytest.raises(sweep.SweepError, match=f"x_{split} has no rows; a sweep trains"):
    sweep.run(c, lambda f: data, 4)


# ------------------------------------------------------------------ running


def test_population_compiles_once_and_matches_fit(monkeypatch):
  for name in ("init_state", "train_epoch"):  # a second trace raises
    monkeypatch.setattr(training, name, chex.assert_max_traces(getattr(training, name), n=1))
  data = _data()
  members = sweep.expand(_config(learning_rate=[0.01, 0.1, 0.3]))
  (g,) = sweep.group(members)
  pop = sweep.Population(g, data, 4)
  state = pop.init()
  key = training.jax.random.key(0)
  for _ in range(3):
    state, _ = pop.epoch(state, key)
  monkeypatch.undo()
  hp = {f: jnp.asarray(v[1]) for f, v in g.hparams.items()}
  s = training.Structure(**{**g.structure.__dict__, "epochs": 3})
  single, _ = training.fit(hp, data, key, s, 4)
  np.testing.assert_allclose(np.asarray(state.params["W"])[1], single.params["W"],
                             rtol=1e-5, atol=1e-7)



def test_a_later_population_of_the_same_structure_reuses_its_epoch_program(monkeypatch):
  """A sweep run again in one process (a notebook, a benchmark's repetitions) traces and
  compiles its epoch program once, and trains as before."""
  sweep.population._epoch_program.cache_clear()    # pylint: disable=protected-access
  monkeypatch.setattr(training, "train_epoch",
                      chex.assert_max_traces(training.train_epoch, n=1))
  data = _data()
  (g,) = sweep.group(sweep.expand(_config(learning_rate=[0.01, 0.1, 0.3])))
  weights = []
  for _ in range(2):
    pop = sweep.Population(g, data, 4)
    state = pop.init()
    for _ in range(2):
      state, _ = pop.epoch(state, training.jax.random.key(0))
    weights.append(np.asarray(state.params["W"]))
  np.testing.assert_array_equal(weights[0], weights[1])
  # The same shapes in another structure (the optimizer) are another program.
  (other,) = sweep.group(sweep.expand(_config(learning_rate=[0.01, 0.1, 0.3],
                                              optimizer=["sgd"])))
  pop = sweep.Population(other, data, 4)
  with pytest.raises(AssertionError, match="trace"):
    pop.epoch(pop.init(), training.jax.random.key(0))


def test_run_selects_by_validation_and_evaluates_test_once():
  data = _data()
  calls = []
  def test_for(features):
    calls.append(features)
    return data.x_val, data.y_val
  result = sweep.run(_config(learning_rate=[1e-4, 0.05], loss=["svm", "softmax"]),
                     lambda f: data, 4, test_for=test_for)
  assert calls == ["pixels"]
  assert result.best == max(result.rows, key=lambda r: r["val_accuracy"])
  assert result.best["learning_rate"] == 0.05
  assert result.test_accuracy == pytest.approx(result.best["val_accuracy"], abs=1e-6)
  row = result.rows[0]
  for key in ("train_accuracy", "val_accuracy", "final_loss", "status", "epochs_run"):
    assert key in row
  assert len(result.history[0]["val_accuracy"]) == 6



@pytest.mark.parametrize("split,n", [("y_train", 1), ("y_train", 100), ("y_val", 1),
                                     ("y_val", 99)])
def test_labels_that_are_not_one_per_row_are_refused(split, n):
  # One label broadcast, and a gather past the end clamped: the members trained and were
  # scored on the wrong labels, and the run ended "ok".
  data = _data()
  data = data._replace(**{split: getattr(data, split)[:n]})
  rows = getattr(data, "x" + split[1:]).shape[0]
  with pytest.raises(sweep.SweepError, match=f"{split}: {n} labels for {rows} rows of x_"):
    sweep.run(_config(learning_rate=[0.1]), lambda f: data, 4)
  with pytest.raises(ValueError, match=rf"{split}: labels must be integers of shape \({rows},\)"):
    training.fit({"learning_rate": jnp.asarray(0.1)}, data, None,
                 training.Structure(epochs=1, batch_size=50), 4)


def test_validation_rows_with_other_columns_are_refused():
  data = _data()
  data = data._replace(x_val=data.x_val[:, :5])
  with pytest.raises(sweep.SweepError, match="x_val has 5 columns where x_train has 12"):
    sweep.run(_config(learning_rate=[0.1]), lambda f: data, 4)


@pytest.mark.parametrize("change,message", [
    (lambda x, y: (x, y[:1]), r"y_test: 1 labels for 100 rows of .*x_test"),
    (lambda x, y: (x, y + 4), r"y_test: label \d+ \(example 0\) is out of range for 4"),
    (lambda x, y: (x.at[3, 0].set(jnp.nan), y), r"x_test: row 3 holds a NaN"),
    (lambda x, y: (x.astype(jnp.int32), y), r"x_test holds int32 rows"),
    (lambda x, y: (x[:, :5], y), r"x_test has 5 columns where x_train has 12"),
])
def test_test_rows_unlike_the_training_rows_are_refused(change, message):
  # Scored as they were, each only lowered the reported test accuracy.
  data = _data()
  x_test, y_test = change(data.x_val, data.y_val)
  with pytest.raises(sweep.SweepError, match=r"test_for\('pixels'\): " + message):
    sweep.run(_config(learning_rate=[0.1]), lambda f: data, 4,
              test_for=lambda f: (x_test, y_test))


def test_float64_asked_of_float32_rows_is_refused():
  # The rows' dtype decides: with dtype='float64' the sweep silently trained in float32.
  c = _config(learning_rate=[0.1])
  c.dtype = "float64"
  with pytest.raises(sweep.SweepError, match="config.dtype is 'float64' but data_for"
                     r"\('pixels'\) gave float32 rows"):
    sweep.run(c, lambda f: _data(), 4)


@pytest.mark.parametrize("dtype", [None, "float32"])
def test_float32_asked_of_float64_rows_is_refused(x64, dtype):
  # The sibling: under 64-bit JAX, float64 rows trained in float64 when float32 was asked
  # for (or left at its default), at twice the memory and other numbers.
  c = _config(learning_rate=[0.1])
  if dtype is not None:
    c.dtype = dtype
  data = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, _data())
  with pytest.raises(sweep.SweepError, match="config.dtype is 'float32' but data_for"
                     r"\('pixels'\) gave float64 rows, .* give float32 rows, or set "
                     "dtype='float64'"):
    sweep.run(c, lambda f: data, 4)
  c.dtype = "float64"
  assert sweep.run(c, lambda f: data, 4).best_params["W"].dtype == jnp.float64


@pytest.mark.parametrize("field,value,message", [
    ("checkpoint_every", 0, "checkpoint_every must be an integer >= 1"),
    ("checkpoint_every", -1, "checkpoint_every must be an integer >= 1"),
    ("dtype", "float16", "dtype must be float32 or float64, got 'float16'"),
])
def test_bad_run_settings_are_refused_before_training(field, value, message):
  c = _config(learning_rate=[0.1])
  c[field] = value
  calls = []
  with pytest.raises(sweep.SweepError, match=message):
    sweep.run(c, lambda f: calls.append(f), 4)
  assert calls == []


@pytest.mark.parametrize("field,value", [("seed", float("nan")), ("seed", float("inf")),
                                         ("epochs", float("inf")), ("patience", float("nan")),
                                         ("batch_size", float("nan"))])
def test_a_non_finite_integer_field_names_itself(field, value):
  with pytest.raises(sweep.SweepError, match=f"{field} must be an integer.*got {value}"):
    sweep.group(sweep.expand(_config(**{field: [value]})))

def test_float16_rows_are_refused():
  # The members' hyperparameters are held in the rows' dtype: in float16 a learning rate
  # of 1e-8 was 0 (the member did not move), and 1e-7 was 1.19e-7, while rows said 1e-8.
  data = _data()
  data = data._replace(x_train=data.x_train.astype(jnp.float16))
  with pytest.raises(sweep.SweepError, match=r"x_train holds float16 rows; a sweep trains in "
                     r"float32 or float64"):
    sweep.run(_config(learning_rate=[1e-8, 0.05]), lambda f: data, 4)


def test_a_test_split_without_rows_is_refused():
  # Its accuracy was NaN, returned as the run's test accuracy.
  data = _data()
  c = _config(learning_rate=[0.05])
  c.epochs = 1
  with pytest.raises(sweep.SweepError, match=r"test_for\('pixels'\) gave no test rows"):
    sweep.run(c, lambda f: data, 4, test_for=lambda f: (data.x_val[:0], data.y_val[:0]))


def test_halving_prunes_all_but_the_best():
  c = _config(learning_rate=[1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.3])
  c.halving.rungs, c.halving.eta = (2, 4), 2
  result = sweep.run(c, lambda f: _data(), 4)
  status = [r["status"] for r in result.rows]
  assert status.count("pruned") == 4 and status.count("ok") == 2
  pruned_at_2 = [r for r in result.rows if r["status"] == "pruned" and r["epochs_run"] == 2]
  assert len(pruned_at_2) == 3
  kept = [r for r in result.rows if r["status"] == "ok"]
  assert all(r["epochs_run"] == 6 for r in kept)
  assert min(r["val_accuracy"] for r in kept) >= max(
      r["val_accuracy"] for r in result.rows if r["status"] == "pruned")


def test_halving_ranks_the_whole_sweep_not_each_group():
  """Two groups of four; a learning rate of 1e-7 makes no progress, so those members stop
  at epoch 3 (patience 2), before the rung at 4. The other 6 are ranked together and
  ceil(6 / 2) = 3 go on (ranking each group apart keeps 2 + 2); the stopped ones stay
  "ok" and take no survivor's place."""
  c = _config(learning_rate=[1e-7, 0.003, 0.03, 0.3], loss=["svm", "softmax"])
  c.patience, c.halving.rungs, c.halving.eta = 2, (4,), 2
  result = sweep.run(c, lambda f: _data(), 4)
  rows = result.rows
  stopped = [r for r in rows if r["learning_rate"] == 1e-7]
  assert all(r["status"] == "ok" and r["epochs_run"] == 3 for r in stopped)
  pruned = [r for r in rows if r["status"] == "pruned"]
  went_on = [r for r in rows if r["epochs_run"] > 4]
  assert pruned and all(r["epochs_run"] == 4 for r in pruned)
  assert len(went_on) == -(-(len(pruned) + len(went_on)) // 2)    # ceil(live / eta)
  at_rung = lambda r: max(result.history[r["member"]]["val_accuracy"][:4])
  assert min(map(at_rung, went_on)) >= max(map(at_rung, pruned))
  for r in rows:
    h = result.history[r["member"]]
    assert len(h["train_loss"]) == len(h["val_accuracy"]) == r["epochs_run"]
    assert np.all(np.isfinite(h["train_loss"])) and np.all(np.isfinite(h["val_accuracy"]))


def test_the_runner_says_which_epoch_of_which_group_it_starts():
  """Each epoch's report follows the runner's word that it starts that epoch of that group
  (`Progress.starting`: where a Ctrl-C lands; with halving the groups take turns)."""
  calls = []

  class Recording(Progress):
    def starting(self, group, epoch):
      calls.append(("start", group, epoch))
      super().starting(group, epoch)

    def __call__(self, p):
      calls.append(("report", p["group"], p["epoch"]))
      super().__call__(p)

  c = _config(learning_rate=[0.003, 0.03], reg=["l2", "none"])
  c.halving.rungs, c.halving.eta = (2,), 2
  sweep.run(c, lambda f: _data(), 4, progress=Recording(io.StringIO()))
  assert calls and len(calls) % 2 == 0
  for start, report in zip(calls[::2], calls[1::2]):
    assert start == ("start", *report[1:]) and report[0] == "report", (start, report)
  assert len({group for _, group, _ in calls}) == 2      # two groups, taking turns
  assert [c[1] for c in calls[::2]][:4] == [0, 0, 1, 1]  # each to the rung, then on


@pytest.mark.parametrize("eta,rungs,message", [
    (0, (2,), "halving.eta must be a finite number >= 2"),
    (1, (2,), "halving.eta must be a finite number >= 2"),
    (-1, (2,), "halving.eta must be a finite number >= 2 (each rung keeps the best 1/eta "
               "of the members still training), got -1"),
    (float("inf"), (2,), "halving.eta must be a finite number >= 2"),   # would prune all
    (2, (0,), "halving.rungs must be epochs before the last (epochs 1..5 for epochs=6), "
              "got (0,)"),
    (2, (2, 6), "halving.rungs must be epochs before the last"),
    (2, (9,), "halving.rungs must be epochs before the last"),
    (2, (2.5,), "halving.rungs must be epochs before the last"),
    (2, (2, 4, 2), "halving.rungs lists 2 twice, got (2, 4, 2); list each rung once"),  # was
    (2, (3, 3.0), "halving.rungs lists 3 twice"),                                         # taken once
])
def test_bad_halving_is_refused_before_training(eta, rungs, message):
  c = _config(learning_rate=[0.1, 0.01])
  c.halving = ml_collections.ConfigDict({"rungs": rungs, "eta": eta})   # eta of any type
  calls = []
  with pytest.raises(sweep.SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
    sweep.run(c, lambda f: calls.append(f), 4)
  assert calls == []


def test_halving_rungs_may_come_in_any_order():
  c = _config(learning_rate=[0.1, 0.01])
  c.halving = ml_collections.ConfigDict({"rungs": (4, 2), "eta": 2})
  assert sweep.halving(c, sweep.expand(c)) == ((2, 4), 2.0)


def test_a_diverged_group_does_not_end_the_sweep():
  c = _config(loss=["svm", "squared_svm"], learning_rate=[10.0])
  c.optimizer = "sgd"
  result = sweep.run(c, lambda f: _data(), 4)
  by_loss = {r["loss"]: r for r in result.rows}
  assert by_loss["squared_svm"]["status"] == "diverged"
  assert by_loss["svm"]["status"] == "ok"
  assert result.best["loss"] == "svm" and result.best_params["W"].shape == (12, 4)


def test_a_member_diverged_in_its_first_epoch_has_no_validation_accuracy():
  # It kept no epoch, so it has no best-validation accuracy: results.csv said 0.0, a
  # number no parameters of it scored.
  result = sweep.run(_config(learning_rate=[0.1, 1e7]), lambda f: _data(), 4)
  wild = result.rows[1]
  assert wild["status"] == "diverged" and wild["best_epoch"] == 0
  assert math.isnan(wild["val_accuracy"])
  # Nor a training accuracy: results.csv said 0.33, that of its initial parameters.
  assert math.isnan(wild["train_accuracy"]) and result.rows[0]["train_accuracy"] > 0.9
  assert result.best["member"] == 0
  header, first, second = report.table(result.rows, ["learning_rate"]).splitlines()
  assert header.split() == ["member", "learning_rate", "val_accuracy", "train_accuracy",
                            "status"]
  assert first.split()[0] == "0"
  assert second.split()[0] == "1" and second.split()[2:4] == ["nan", "nan"]


def test_a_nan_accuracy_ranks_below_every_number_in_any_order():
  # Compared as neither above nor below, a NaN left the order to the rows': `best` chose
  # it when it came first, and halving kept it over better members.
  row = lambda m, acc: {"member": m, "status": "ok", "val_accuracy": acc}
  for accs in ([math.nan, 0.5, 0.9], [0.5, math.nan, 0.9], [0.9, 0.5, math.nan]):
    rows = [row(m, a) for m, a in enumerate(accs)]
    assert selection.best(rows)["val_accuracy"] == 0.9
    assert [r.split()[1] for r in report.table(rows, []).splitlines()[1:]] == [
        "0.9", "0.5", "nan"]
  assert selection.survivors({0: 0.5, 1: math.nan, 2: 0.9, 3: 0.7}, 2) == {2, 3}


def test_every_member_diverged_fails_and_leaves_no_checkpoint(tmp_path):
  c = _config(loss=["squared_svm"], learning_rate=[10.0, 30.0])
  c.optimizer = "sgd"
  with pytest.raises(sweep.Diverged, match="^all 2 members diverged; lower the learning rate$"):
    sweep.run(c, lambda f: _data(), 4, workdir=str(tmp_path))
  assert os.listdir(tmp_path) == []  # nothing that would refuse a corrected sweep


def test_divergence_is_isolated_bit_for_bit():
  data = _data()
  sane = sweep.run(_config(learning_rate=[0.01, 0.1, 0.05, 0.3]), lambda f: data, 4)
  wild = sweep.run(_config(learning_rate=[0.01, 0.1, 1e7, 0.3]), lambda f: data, 4)
  assert wild.rows[2]["status"] == "diverged"
  assert [r["status"] for r in sane.rows] == ["ok"] * 4
  for i in (0, 1, 3):
    for key in ("train_accuracy", "val_accuracy", "final_loss"):
      assert wild.rows[i][key] == sane.rows[i][key]
    assert wild.history[i] == sane.history[i]


def _run_script(*args, env=None):
  out = subprocess.run([sys.executable, os.path.join(HERE, "_sweep_main.py"), *args],
                       capture_output=True, text=True, env=env, check=True, timeout=300)
  return json.loads(out.stdout.split("rows ", 1)[1]), out.stdout


def _in_process(workdir=None, num_lrs=5, seeds=None, progress=None):
  """_sweep_main's rows, run in the test's process (as JSON gives them, like the script's)."""
  return json.loads(json.dumps(_sweep_main.run(workdir, num_lrs, seeds, progress)))


def test_four_devices_give_the_same_results():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  rows4, out4 = _run_script("-", "5", env=env)   # 5 members per group: not a multiple of 4
  assert "devices 4" in out4 and jax.device_count() < 4
  assert rows4 == _in_process()


def test_four_devices_give_the_same_results_in_seed_blocks():
  """3 lr x 2 losses x 2 seeds: one chunk of 12 members in seed blocks of 6; on four
  devices, padded to 48 (the last member's copies, of the last seed)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  rows4, out4 = _run_script("-", "3", "2", env=env)
  rows1 = _in_process(num_lrs=3, seeds=2)
  assert "devices 4" in out4 and jax.device_count() < 4
  assert sorted({r["seed"] for r in rows1}) == [0, 1] and rows4 == rows1


def test_resume_after_kill(tmp_path):
  full = _in_process(str(tmp_path / "full"))
  workdir = str(tmp_path / "killed")
  proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_sweep_main.py"), workdir],
                          stdout=subprocess.PIPE, text=True)
  for line in proc.stdout:
    if line.startswith("progress") and json.loads(line[9:])["epoch"] == 5:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = json.load(open(os.path.join(workdir, "checkpoint", "sweep.json")))
  assert saved["groups"]["0"]["epoch"] >= 5 and not saved["groups"]["0"].get("finished")
  seen = []
  resumed = _in_process(workdir, progress=seen.append)
  assert seen[0]["group"] == 0 and seen[0]["epoch"] > 5
  assert resumed == full


class _InterruptAt(KillAt):
  """Progress that raises KeyboardInterrupt (a Ctrl-C) after an epoch."""

  def __call__(self, p):
    try:
      super().__call__(p)
    except Killed as e:
      raise KeyboardInterrupt from e


def test_commits_wait_checkpoint_seconds_and_ctrl_c_commits_the_last_epoch(tmp_path):
  data = _data()
  c = _config(learning_rate=[0.01, 0.1])
  c.checkpoint_seconds = 3600.0

  def committed(workdir):
    path = workdir / "checkpoint" / "sweep.json"
    return json.loads(path.read_text())["groups"].get("0", {}) if path.exists() else {}
  full = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "full"))
  with pytest.raises(Killed):        # a kill: what the last commit kept (none yet)
    sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "killed"), progress=KillAt(0, 3))
  assert committed(tmp_path / "killed") == {}
  with pytest.raises(KeyboardInterrupt):
    sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "interrupted"),
              progress=_InterruptAt(0, 3))
  assert committed(tmp_path / "interrupted")["epoch"] == 3
  for name in ("killed", "interrupted"):
    resumed = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / name))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(resumed.rows) == drop(full.rows) and resumed.history == full.history
  c.checkpoint_seconds = 0           # every epoch (checkpoint_every = 1)
  with pytest.raises(Killed):
    sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "every"), progress=KillAt(0, 3))
  assert committed(tmp_path / "every")["epoch"] == 3


def test_ctrl_c_during_a_commit_still_commits_the_last_epoch(tmp_path, monkeypatch):
  """The commit of epoch 3 is interrupted before it writes: the interrupt's own commit
  writes epoch 3 (the run's bookkeeping already said 3 when the interrupt came)."""
  data = _data()
  c = _config(learning_rate=[0.01, 0.1])
  c.checkpoint_seconds = 0
  calls, commit = [], checkpoint.Store.commit

  def interrupted_third(store, meta, files):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return commit(store, meta, files)
  monkeypatch.setattr(checkpoint.Store, "commit", interrupted_third)
  with pytest.raises(KeyboardInterrupt):
    sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  saved = json.loads((tmp_path / "checkpoint" / "sweep.json").read_text())
  assert len(calls) == 4 and saved["groups"]["0"]["epoch"] == 3


def test_a_sweep_killed_at_any_write_resumes_to_the_same_results(tmp_path, monkeypatch):
  """Two groups, a rung between them, a checkpoint after every epoch: the run is killed
  at its first file operation, then (a fresh run) at its second, ..., and each time
  resumed. The runs share each group's Population (pure compiled functions), so that
  the test compiles once."""
  share_populations(monkeypatch)
  x, y = blobs(300)
  data = training.Data(jnp.asarray(x[:200]), jnp.asarray(y[:200]),
                       jnp.asarray(x[200:]), jnp.asarray(y[200:]))
  c = _config(reg=["l2", "l1"], learning_rate=[0.003, 0.03, 0.3])
  c.epochs, c.halving.rungs = 3, (1,)
  c.checkpoint_seconds = 0     # a commit after every epoch: each is a place to be killed
  run = lambda workdir: sweep.run(c, lambda f: data, 4, workdir=str(workdir))
  left = []

  def leftovers(workdir):
    folder = workdir / "checkpoint"
    named = json.loads((folder / "sweep.json").read_text()).get("files", {}).values()
    left.extend(sorted(set(os.listdir(folder)) - {"sweep.json", *named}))
  _, ops, differ = resumes_at_every_write(run, tmp_path, after=leftovers)
  assert ops >= 12
  assert differ == [], f"killed at these operations, the resumed run differs: {differ}"
  assert left == [], f"files a killed run left behind: {left}"


@pytest.fixture(scope="module")
def stopped_runs(tmp_path_factory):
  """(config, data, {"finished": workdir, "training": workdir}) of a one-group sweep run
  to its end and one killed after its second epoch. (The sweep of
  `test_a_workdir_resumed_on_other_data_is_refused`: the same programs.)"""
  data, c = _data(), _config(learning_rate=[0.01, 0.1])
  c.checkpoint_seconds = 0
  workdirs = {name: tmp_path_factory.mktemp(name) for name in ("finished", "training")}
  sweep.run(c, lambda f: data, 4, workdir=str(workdirs["finished"]))
  with pytest.raises(Killed):
    sweep.run(c, lambda f: data, 4, workdir=str(workdirs["training"]), progress=KillAt(0, 2))
  return c, data, workdirs


def _damage_array(name, change):
  def damage(folder, saved):
    path = folder / saved["files"]["group0"]
    arrays = dict(np.load(path))
    arrays[name] = change(arrays.pop(name))
    if arrays[name] is None:
      del arrays[name]
    np.savez(path, **arrays)
  return damage


def _damage_manifest(change):
  def damage(folder, saved):
    change(saved)
    (folder / "sweep.json").write_text(json.dumps(saved))
  return damage


@pytest.mark.parametrize("run,damage,why", [
    ("finished", _damage_array("val_accuracy", lambda a: None), "no array val_accuracy"),
    ("finished", _damage_array("status", lambda a: a[:1]),
     "status of shape (1,), expected (2,)"),
    ("finished", _damage_array("status", lambda a: a + 7), "status [7, 7] holds values other"),
    ("finished", _damage_array("train_loss_history", lambda a: a[:, :2]),
     "train_loss_history holds 2 epochs, its members ran 6"),
    ("training", _damage_array("train_loss", lambda a: a[:, :3]),
     "train_loss of shape (2, 3), expected (2, 6)"),
    ("training", _damage_manifest(lambda s: s["files"].pop("group0")),
     "it names no file of group0"),
    ("training", _damage_manifest(lambda s: s.pop("halved")),
     "no groups, halved rungs or seconds"),
    ("training", _damage_manifest(lambda s: s["groups"]["0"].pop("epoch")),
     "group 0's progress is {'finished': False, 'seconds'"),
])
def test_a_damaged_sweep_checkpoint_is_one_line_naming_its_file(
    stopped_runs, tmp_path, run, damage, why):
  # Each was a KeyError or an IndexError mid-resume, or (the history) a shorter curve
  # in metrics.jsonl than the epochs its row says the member ran.
  c, data, workdirs = stopped_runs
  folder = tmp_path / "checkpoint"
  shutil.copytree(workdirs[run] / "checkpoint", folder)
  saved = json.loads((folder / "sweep.json").read_text())
  path = folder / ("sweep.json" if damage.__qualname__.startswith("_damage_manifest")
                   else saved["files"]["group0"])
  damage(folder, saved)
  with pytest.raises(checkpoint.Damaged, match=rf"^{re.escape(str(path))} is damaged: not the "
                     rf"(\.npz|JSON) lincv wrote \({re.escape(why)}.*\); remove the run"):
    sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))


def test_different_config_on_existing_workdir_is_refused(tmp_path):
  data = _data()
  sweep.run(_config(learning_rate=[0.1]), lambda f: data, 4, workdir=str(tmp_path))
  with pytest.raises(sweep.SweepError, match=r"holds a run of a different configuration "
                     r"\(fields differ: sweep\); use a new workdir"):
    sweep.run(_config(learning_rate=[0.2]), lambda f: data, 4, workdir=str(tmp_path))
  other = _config(learning_rate=[0.1])     # refused before its rows are fetched
  other.dtype, other.epochs = "float64", 3
  with pytest.raises(sweep.SweepError, match=r"\(fields differ: dtype, epochs\)"):
    sweep.run(other, lambda f: data, 4, workdir=str(tmp_path))


@pytest.mark.parametrize("change", ["rows", "labels", "num_classes", "val"])
def test_a_workdir_resumed_on_other_data_is_refused(tmp_path, change):
  # Only the configuration was compared: a killed run went on training on other rows
  # (mixing both in its results), and a finished one returned the old run's results.
  data, classes = _data(), 4
  c = _config(learning_rate=[0.01, 0.1])
  c.checkpoint_seconds = 0
  with pytest.raises(Killed):
    sweep.run(c, lambda f: data, classes, workdir=str(tmp_path / "killed"),
              progress=KillAt(0, 2))
  sweep.run(c, lambda f: data, classes, workdir=str(tmp_path / "finished"))
  if change == "rows":
    other = data._replace(x_train=data.x_train.at[7, 0].add(1e-3))
  elif change == "labels":
    other = data._replace(y_train=data.y_train.at[7].set((data.y_train[7] + 1) % 4))
  elif change == "val":
    other = data._replace(x_val=data.x_val[:-1], y_val=data.y_val[:-1])
  else:
    other, classes = data, 5
  for name in ("killed", "finished"):
    with pytest.raises(sweep.SweepError, match=re.escape(
        f"{tmp_path / name} holds a run on other data: data_for('pixels') gave rows or "
        "labels other than those the run started on; use a new workdir")):
      sweep.run(c, lambda f: other, classes, workdir=str(tmp_path / name))
  # The same data resumes, and finishes as an uninterrupted run.
  resumed = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "killed"))
  finished = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path / "finished"))
  assert resumed.history == finished.history


def test_the_checkpoint_knows_its_configuration_by_config_fingerprint(tmp_path, monkeypatch):
  # One definition of "the same configuration": the run directory's and the checkpoint's.
  data = _data()
  c = _config(learning_rate=[0.1])
  # A fingerprint of a fingerprint is itself, as config.fingerprint's.
  monkeypatch.setattr(config_lib, "fingerprint", lambda config: config if "lr" in config
                      else {"lr": config.sweep.learning_rate})
  first = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  saved = json.loads((tmp_path / "checkpoint" / "sweep.json").read_text())
  assert saved["config"] == {"lr": [0.1]}
  c.epochs = 3  # the same fingerprint: the finished 6-epoch run is read back, not refused
  again = sweep.run(c, lambda f: data, 4, workdir=str(tmp_path))
  assert len(again.history[0]["val_accuracy"]) == 6
  assert again.best["val_accuracy"] == first.best["val_accuracy"]


@pytest.mark.parametrize("field,value,message", [
    ("reg_strength", float("inf"), "reg_strength must be a finite number >= 0, got inf"),
    ("learning_rate", float("inf"), "learning_rate must be a finite number > 0, got inf"),
    ("reg_strength", 1e39, r"reg_strength 1e\+39 is infinite in float32, the dtype of the "
                           r"rows the sweep computes in; give values within its range"),
    ("reg_strength", 1e-46, "reg_strength 1e-46 is 0 in float32"),   # no regularisation
])
def test_a_hyperparameter_the_rows_dtype_cannot_hold_is_refused(field, value, message):
  c = _config(learning_rate=[0.1])
  c[field] = value
  with pytest.raises(sweep.SweepError, match=message):
    sweep.run(c, lambda f: _data(), 4)


def test_a_basis_that_does_not_fit_the_rows_is_refused():
  d = _data()
  wrong = lbfgs.basis(d.x_train[:, :3])
  c = _config(reg_strength=[1e-3])
  c.optimizer = "lbfgs"
  with pytest.raises(sweep.SweepError, match=r"basis: vectors of shape \(3, 3\) and values "
                     r"of shape \(3,\) do not fit \d+ rows of \d+ columns"):
    sweep.run(c, lambda f: d._replace(basis=wrong), 4)
  few = d._replace(x_train=d.x_train[:3], y_train=d.y_train[:3])    # fewer rows than columns
  result = sweep.run(c, lambda f: few._replace(basis=lbfgs.basis(few.x_train)), 4)
  assert result.rows[0]["iterations"] > 0


def test_float64_rows_without_64_bit_jax_are_refused():
  """They would train in float32, silently, as JAX casts them."""
  d = _data()
  rows = training.Data(*(np.asarray(a, np.float64) if a.dtype == np.float32 else np.asarray(a)
                         for a in d[:4]))
  with pytest.raises(sweep.SweepError, match="x_train's dtype float64 needs 64-bit JAX"):
    sweep.run(_config(learning_rate=[0.1]), lambda f: rows, 4)


@pytest.mark.parametrize("spec, message", [
    # Draws outside the field's range were refused one member at a time: 3 draws of
    # [0.5, 1.5] could all fall below 1 and pass, and 20 of the same space fail.
    ({"momentum": {"uniform": [0.5, 1.5]}},
     "sweep field 'momentum': uniform [0.5, 1.5] holds values that are not valid: momentum "
     "must be in [0, 1), got 1.4999999999999998"),
    ({"learning_rate": {"uniform": [0, 1]}},
     "sweep field 'learning_rate': uniform [0, 1] holds values that are not valid: "
     "learning_rate must be a finite number > 0, got 0.0"),
    ({"lr_decay": {"log_uniform": [0.1, 2]}, "schedule": ["step"]},
     "sweep field 'lr_decay': log_uniform [0.1, 2] holds values that are not valid: lr_decay "
     "must be in (0, 1]"),
    # A seed drawn from U(0, 10) was refused after the draw: "seed must be an integer in
    # [0, 2**32), got 7.195523108646091".
    ({"seed": {"uniform": [0, 10]}},
     "sweep field 'seed': uniform draws real numbers, and a seed is an integer; list the "
     "seeds instead, e.g. [0, 1, 2]"),
])
def test_a_distribution_over_invalid_values_is_refused_before_any_draw(spec, message):
  c = _config(**spec)
  c.search, c.num_samples = "random", 3
  with pytest.raises(sweep.SweepError, match=re.escape(message)):
    sweep.expand(c)


def test_a_uniform_range_up_to_an_excluded_bound_is_accepted():
  # U[low, high) never draws high: momentum in [0.5, 1) is valid.
  c = _config(momentum={"uniform": [0.5, 1.0]})
  c.search, c.num_samples = "random", 5
  assert all(0.5 <= m["momentum"] < 1 for m in sweep.expand(c))
