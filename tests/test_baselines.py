"""Random search baselines, and the k-NN / random-search methods of an experiment."""

import csv
import io
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lincv import baselines, experiment, losses
from _sweep_main import blobs


def _data():
  x, y = blobs(300, d=10, c=3)
  return jnp.asarray(x), jnp.asarray(y)


def test_random_search_keeps_the_lowest_loss():
  x, y = _data()
  w, loss, tries = baselines.random_search(jax.random.key(0), x, y, 3, loss="svm",
                                           num_tries=60, scale=0.1, batch=16)
  assert tries.shape == (60,)
  np.testing.assert_allclose(loss, jnp.min(tries), rtol=1e-6)
  np.testing.assert_allclose(loss, jnp.mean(losses.svm(x @ w, y)), rtol=1e-5)


def test_random_search_scores_exactly_num_tries():
  # 10 tries in batches of 8: two batches, 16 slots. A reference loop draws the same
  # candidates one by one; the 6 slots past num_tries hold a lower loss than the best of
  # the 10 (checked below), so scoring them would return a W that was never tried.
  x, y = _data()
  key, num_tries = jax.random.key(0), 10
  shape = (x.shape[1], 3)
  cands = [baselines.random_candidate(key, i, shape, x.dtype, 0.1) for i in range(16)]
  ref = np.array([float(jnp.mean(losses.svm(x @ w, y))) for w in cands])
  best = int(np.argmin(ref[:num_tries]))
  assert ref[num_tries:].min() < ref[best]
  for batch in (8, 3, 10, 64):
    w, loss, tries = baselines.random_search(key, x, y, 3, loss="svm", num_tries=num_tries,
                                             scale=0.1, batch=batch)
    assert tries.shape == (num_tries,)
    np.testing.assert_allclose(tries, ref[:num_tries], rtol=1e-5)
    # The jitted draw may round differently from the eager one by an ulp or two.
    np.testing.assert_allclose(w, cands[best], rtol=4 * np.finfo(np.float32).eps)
    assert float(loss) == float(tries[best])


def test_random_local_search_never_increases_the_loss():
  x, y = _data()
  w, loss, trace = baselines.random_local_search(jax.random.key(1), x, y, 3, loss="softmax",
                                                 num_steps=200, scale=0.01, step=0.05)
  assert bool(jnp.all(jnp.diff(trace) <= 0))
  assert float(trace[-1]) < float(trace[0])
  np.testing.assert_allclose(loss, jnp.mean(losses.softmax(x @ w, y)), rtol=1e-5)


@pytest.mark.parametrize("search", [baselines.random_search, baselines.random_local_search])
def test_random_searches_refuse_labels_out_of_range_and_non_finite_rows(search):
  # Either would make every candidate's loss NaN, and the search return candidate 0.
  x, y = _data()
  with pytest.raises(ValueError, match=r"label 3 \(example 5\) is out of range for 3"):
    search(jax.random.key(0), x, y.at[5].set(3), 3)
  with pytest.raises(ValueError, match="row 7 holds a NaN"):
    search(jax.random.key(0), x.at[7, 2].set(jnp.nan), y, 3)
  with pytest.raises(ValueError, match="row 8 holds a NaN"):       # checked on the host
    search(jax.random.key(0), np.asarray(x.at[8, 0].set(-jnp.inf)), y, 3)
  with pytest.raises(ValueError, match=r"labels must be integers of shape \(300,\), got "
                     r"shape \(300, 1\)"):
    search(jax.random.key(0), x, y[:, None], 3)


def test_a_search_compiles_its_own_program_and_no_finiteness_check(compiled):
  """Op by op, the check of device rows compiled two programs per shape; on a CPU the
  rows are checked on the host, on an accelerator by one program."""
  rng = np.random.default_rng(3)
  x, y = jax.device_put(rng.normal(size=(41, 7)).astype(np.float32)), np.arange(41) % 3
  key = jax.random.key(0)
  compiled.clear()
  baselines.random_search(key, x, y, 3, num_tries=5)
  check = [] if jax.default_backend() == "cpu" else ["jit(_all_finite)"]
  assert sorted(compiled) == sorted(["jit(_random_search)", *check])


@pytest.mark.parametrize("search, kw, message", [
    # A NaN step kept the starting point as the answer; a NaN scale made W NaN.
    ("random_local_search", dict(step=float("nan")), "step must be a finite number > 0"),
    ("random_local_search", dict(step=0.0), "step must be a finite number > 0, got 0.0"),
    ("random_local_search", dict(scale=float("inf")), "scale must be a finite number > 0"),
    ("random_local_search", dict(num_steps=-2), "num_steps must be a positive integer, got -2"),
    ("random_local_search", dict(num_steps=2.5), "num_steps must be a positive integer"),
    ("random_search", dict(scale=float("nan")), "scale must be a finite number > 0, got nan"),
    ("random_search", dict(batch=0), "batch must be a positive integer, got 0"),
    ("random_search", dict(num_tries=0), "num_tries must be a positive integer, got 0"),
    ("random_search", dict(num_tries=True), "num_tries must be a positive integer, got True"),
])
def test_random_searches_refuse_bad_settings_in_one_line(search, kw, message):
  x, y = _data()
  with pytest.raises(ValueError, match=re.escape(message)):
    getattr(baselines, search)(jax.random.key(0), x, y, 3, **kw)


@pytest.mark.parametrize("search", ["random_search", "random_local_search"])
def test_random_searches_refuse_a_seed_given_as_the_key(search):
  # An int raised "invalid PRNG key data" from inside jax.random.
  x, y = _data()
  with pytest.raises(TypeError, match=r"key must be one JAX random key, such as "
                                      r"jax.random.key\(0\), got int 3"):
    getattr(baselines, search)(3, x, y, 3)


@pytest.mark.parametrize("variant", ["knn", "random_local_search"])
def test_baseline_methods_end_to_end(tmp_path, monkeypatch, variant):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  from configs import digits_baselines
  config = digits_baselines.get_config(variant)
  out = io.StringIO()
  summary = experiment.run(config, str(tmp_path / "run"), stream=out)
  saved = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert saved["method"] == variant
  acc = saved["best"]["test_accuracy"]
  assert acc == summary["best"]["test_accuracy"]
  assert acc > (0.9 if variant == "knn" else 0.25)  # chance is 0.1
  if variant == "knn":
    assert saved["best"]["hparams"]["k"] in (1, 3, 5, 10)
  evaluated = experiment.evaluate(str(tmp_path / "run"), "test")
  assert evaluated["accuracy"] == pytest.approx(acc)
  _check_own_curves(tmp_path / "run", variant)


def _check_own_curves(workdir, variant):
  """The run's event file holds its own figure: accuracy over k, or loss over tries."""
  from tensorboard.backend.event_processing import event_accumulator as ea  # pylint: disable=import-outside-toplevel
  acc = ea.EventAccumulator(str(workdir / "tensorboard"), size_guidance={ea.SCALARS: 0})
  acc.Reload()
  curve = lambda tag: [(s.step, s.value) for s in acc.Scalars(tag)]
  f32 = lambda x: float(np.float32(float(x)))
  with open(workdir / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  if variant == "knn":
    for metric in ("l1", "l2"):
      assert curve(f"knn/{metric}/cv_accuracy") == [
          (int(r["k"]), f32(r["cv_accuracy"])) for r in rows if r["metric"] == metric]
  else:
    loss = curve(f"{variant}/loss")
    assert [s for s, _ in loss] == list(range(1, 201))
    assert loss[-1][1] == f32(rows[0]["final_loss"]) <= loss[0][1]


def test_rows_that_are_not_a_matrix_are_named():
  x, y = np.zeros((30, 4), np.float32), np.arange(30) % 3
  with pytest.raises(AssertionError, match=re.escape("[x_NxD must be rows (N, D)]")):
    baselines.random_search(jax.random.key(0), x[:, 0], y, 3, num_tries=2)


@pytest.mark.parametrize("search", ["random_search", "random_local_search"])
def test_integer_and_half_precision_rows_are_searched_in_float32(search):
  # uint8 rows drew uint8 candidates: "OverflowError: cannot convert float infinity to
  # integer"; float16 rows were scored in float16.
  x, y = _data()
  kw = dict(num_tries=5) if search == "random_search" else dict(num_steps=5)
  f32 = getattr(baselines, search)(jax.random.key(0), np.round(np.asarray(x) * 20),
                                   y, 3, **kw)
  for rows in (np.round(np.asarray(x) * 20).astype(np.int64),
               np.round(np.asarray(x) * 20).astype(np.int16)):
    w, loss, _ = getattr(baselines, search)(jax.random.key(0), rows, y, 3, **kw)
    assert w.dtype == jnp.float32 and float(loss) == float(f32[1])
  w, loss, _ = getattr(baselines, search)(jax.random.key(0), np.asarray(x, np.float16), y, 3,
                                          **kw)
  assert w.dtype == loss.dtype == jnp.float32


@pytest.mark.parametrize("search", ["random_search", "random_local_search"])
@pytest.mark.parametrize("num_classes, message", [
    (3.0, "num_classes must be a positive integer, got 3.0"),
    (0, "num_classes must be a positive integer, got 0"),
])
def test_a_class_count_that_is_not_a_positive_integer_is_named(search, num_classes, message):
  # 3.0 raised "Shapes must be 1D sequences of concrete values of integer type"; 0 said
  # "labels must be in [0, -1]".
  x, y = _data()
  with pytest.raises(ValueError, match=re.escape(message)):
    getattr(baselines, search)(jax.random.key(0), x, y, num_classes)


@pytest.mark.parametrize("search", ["random_search", "random_local_search"])
def test_no_rows_are_refused(search):
  # The mean loss over no rows was NaN, returned as the best loss.
  with pytest.raises(ValueError, match=r"x_NxD has no rows \(shape \(0, 4\)\)"):
    getattr(baselines, search)(jax.random.key(0), np.zeros((0, 4), np.float32),
                               np.zeros(0, np.int32), 3)
