"""k-NN runs of an experiment: which rows vote for which split, folds of mirrored images,
a single k, and strict JSON."""

import csv
import io
import re

import numpy as np
import pytest

from lincv import experiment, inputs as inputs_lib, knn
from configs import digits_baselines
from test_json import strict_load


def _config(**knn_fields):
  c = digits_baselines.get_config("knn")
  c.knn.metrics = ("l2",)
  for k, v in knn_fields.items():
    setattr(c.knn, k, v)
  return c


def _accuracy(pool_x, pool_y, x, y, k=1):
  return float(np.mean(np.asarray(knn.predict(pool_x, pool_y, x, k, "l2", 10)) == y))


def test_single_k_validates_on_training_rows_only(tmp_path, offline_data):
  c = _config(ks=(1,))
  c.eval_split = "val"
  workdir = str(tmp_path / "run")
  summary = experiment.run(c, workdir, stream=io.StringIO())
  inputs = inputs_lib.load(c)
  (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (inputs.split("pixels", s)
                                              for s in ("train", "val", "test"))
  # val rows are labelled by the training rows alone; with themselves in the pool 1-NN
  # would score 100%
  val_acc = _accuracy(x_tr, y_tr, x_va, y_va)
  assert val_acc < 1
  assert summary["best"]["val_accuracy"] == val_acc
  assert experiment.evaluate(workdir, "val")["accuracy"] == val_acc
  # test rows by every labelled row: training and validation
  pool_x, pool_y = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
  assert experiment.evaluate(workdir, "test")["accuracy"] == _accuracy(pool_x, pool_y, x_te, y_te)
  # one k is cross-validated too, and summary.json is strict JSON
  cv = knn.cross_validate(x_tr, y_tr, ks=(1,), num_folds=c.knn.num_folds, metric="l2",
                          seed=c.data.split_seed, num_classes=10)["accuracy"][0]
  saved = strict_load(tmp_path / "run" / "summary.json")
  assert saved["best"]["cv_accuracy"] == cv and 0.9 < cv < 1


def test_mirrored_copies_share_a_cross_validation_fold(tmp_path, offline_data):
  c = _config(ks=(1, 3))
  c.data.flip = True
  experiment.run(c, str(tmp_path / "run"), stream=io.StringIO())
  with open(tmp_path / "run" / "results.csv") as f:
    got = [float(r["cv_accuracy"]) for r in csv.DictReader(f)]
  inputs = inputs_lib.load(c)
  x, y = inputs.split("pixels", "train")
  n = len(inputs.prepared.y_train)
  assert len(y) == 2 * n
  grouped = knn.cross_validate(x, y, ks=(1, 3), metric="l2", seed=c.data.split_seed,
                               num_classes=10, groups=np.arange(2 * n) % n)["accuracy"]
  assert got == grouped


def test_a_k_larger_than_the_folds_is_a_config_error(tmp_path, offline_data):
  with pytest.raises(experiment.ConfigError, match="knn: k=5000 exceeds the smallest"):
    experiment.run(_config(ks=(1, 5000)), str(tmp_path / "run"), stream=io.StringIO())


@pytest.mark.parametrize("field,value,message", [
    ("metrics", (), "knn.metrics is empty; give one or more of: l1, l2"),
    ("ks", ("a", "b"), "knn.ks must be positive integers, got ('a', 'b')"),
    ("ks", (1, 2.5), "knn.ks must be positive integers, got (1, 2.5)"),
    ("ks", (np.int64(3),), None),                  # a NumPy integer is an integer
    ("ks", (1, 3, 1), "knn.ks lists 1 twice; list each once"),
    ("metrics", ("l2", "l2"), "knn.metrics lists 'l2' twice; list each once"),
])
def test_bad_knn_fields_are_refused_before_anything_is_written(tmp_path, field, value,
                                                               message):
  # An empty metrics tuple raised max()'s ValueError, ks of text a TypeError from min(),
  # and each left config.json and checkpoint/data.json behind.
  c = _config(**{field: value})
  if message is None:
    experiment.check(c)
    return
  with pytest.raises(experiment.ConfigError, match="^" + re.escape(message) + "$"):
    experiment.run(c, str(tmp_path / "run"), stream=io.StringIO())
  assert not (tmp_path / "run").exists()


def test_a_cross_validation_over_fewer_rows_per_fold_than_classes_is_warned_of(
    tmp_path, offline_data):
  # 5 rows in 5 folds scored every k 0.0 and picked the first, without a word.
  with pytest.warns(UserWarning, match=r"k-NN cross-validates k over 20 training rows in 5 "
                                       r"folds, fewer rows per fold than the 10 classes: the "
                                       r"choice of k is noise; raise knn.cv_limit .* to at "
                                       r"least 50"):
    experiment.run(_config(ks=(1, 3), cv_limit=20), str(tmp_path / "run"),
                   stream=io.StringIO())
