"""`lincv.Run`: a finished run read back, and its predictions equal to what it recorded."""

import io
import json
import os
import shutil

import ml_collections
import numpy as np
import pytest

import lincv
from lincv import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(spec, workdir, **fields):
  config = config_lib.load(os.path.join(ROOT, spec))
  for name, value in fields.items():
    node, *path = name.split(".")
    target = config
    for part in [node, *path][:-1]:
      target = target[part]
    target[[node, *path][-1]] = value
  return lincv.train(config, str(workdir), stream=io.StringIO())


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("digits")
  os.environ["TFDS_DATA_DIR"] = str(tmp / "tfds")
  try:
    summary = _train("configs/default.py:smoke", tmp / "run")
    yield lincv.Run.load(tmp / "run"), summary
  finally:
    del os.environ["TFDS_DATA_DIR"]


def test_a_digits_run_predicts_its_own_test_accuracy(digits_run):
  run, summary = digits_run
  assert run.best == summary["best"]
  images = run.inputs.prepared.images["test"]
  labels = run.inputs.prepared.y_test
  recorded = summary["best"]["test_accuracy"]
  assert np.mean(run.predict(images) == labels) == recorded           # from images
  x_test, _ = run.inputs.split("pixels", "test")
  assert np.mean(run.predict(x_test) == labels) == recorded           # from rows
  scores = run.scores(images)
  assert scores.shape == (len(labels), 10)
  np.testing.assert_array_equal(scores.argmax(axis=1), run.predict(images))
  assert run.evaluate("test")["accuracy"] == recorded
  assert run.evaluate("val")["accuracy"] == pytest.approx(summary["best"]["val_accuracy"])


def test_scores_are_the_score_function_of_the_selected_parameters_in_one_program(
    digits_run, compiled):
  run, _ = digits_run
  x_test, _ = run.inputs.split("pixels", "test")
  rows = x_test[:7]                        # a shape no other test scores
  compiled.clear()
  got = run.scores(rows)
  assert compiled == ["jit(_scores)"]      # op by op, five
  want = rows.astype(np.float64) @ np.asarray(run.params["W"], np.float64) + np.asarray(
      run.params["b"], np.float64)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_a_run_reads_back_its_table_history_and_parameters(digits_run):
  run, summary = digits_run
  assert len(run.results) == summary["num_members"]
  row = run.results[run.best["member"]]
  assert row["member"] == run.best["member"] and isinstance(row["val_accuracy"], float)
  assert row["val_accuracy"] == run.best["val_accuracy"]
  h = run.history[run.best["member"]]
  assert h["epoch"] == list(range(1, row["epochs_run"] + 1))
  assert max(h["val_accuracy"]) == pytest.approx(row["val_accuracy"])
  assert run.params["W"].shape == (64, 10) and run.params["W"].dtype == np.float32
  assert run.class_names == tuple(str(i) for i in range(10))
  assert "val 0." in repr(run)


def test_a_run_refuses_input_it_cannot_classify(digits_run, tmp_path):
  run, _ = digits_run
  with pytest.raises(ValueError, match=r"images have shape \(4, 4, 1\).*\(8, 8, 1\)"):
    run.predict(np.zeros((2, 4, 4, 1), np.uint8))
  with pytest.raises(ValueError, match="rows have 3 columns; this run's classifier takes 64"):
    run.predict(np.zeros((2, 3), np.float32))
  with pytest.raises(ValueError, match="expected uint8 images"):
    run.predict(np.zeros((2, 8, 8), np.int64))
  rows = np.zeros((4, 64))
  rows[2, 7] = np.inf
  with pytest.raises(ValueError, match="row 2, column 7 holds inf; .* finite values only"):
    run.predict(rows)
  raw = run.inputs.prepared.images["test"][:5].reshape(5, -1).astype(np.float32)
  with pytest.warns(UserWarning, match="the 5 rows hold no negative value, where this run's "
                                       "rows are centred .* raw pixels?"):
    run.predict(raw)           # flattened pixels, not the run's centred rows
  rows[2, 7] = -1e39         # finite in float64, not in the run's float32
  with pytest.raises(ValueError, match="row 2, column 7 holds -1e.39, beyond the range of float32"):
    run.scores(rows)
  with pytest.raises(lincv.ConfigError, match="unknown split 'dev'"):
    run.evaluate("dev")
  with pytest.raises(lincv.ConfigError, match="is not a finished run"):
    lincv.Run.load(tmp_path)


def test_an_image_folder_run_with_hog_features_classifies_the_folder(image_folder, tmp_path,
                                                                    monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  summary = _train("configs/cifar10_features.py:smoke", tmp_path / "run",
                   **{"data.folder": str(image_folder), "data.limit": 0})
  run = lincv.Run.load(tmp_path / "run")
  # New images, as files: the run's own preprocessing and fitted features, no dataset.
  correct = total = 0
  for k, name in enumerate(run.class_names):
    pred = run.predict(image_folder / "test" / name)
    correct, total = correct + int(np.sum(pred == k)), total + len(pred)
  assert "inputs" not in run.__dict__     # the dataset was never loaded
  assert correct / total == summary["best"]["test_accuracy"]


def test_a_knn_run_predicts_with_its_pool(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  summary = _train("configs/digits_baselines.py:knn", tmp_path / "run")
  run = lincv.Run.load(tmp_path / "run")
  assert run.params is None
  images, labels = run.inputs.prepared.images["test"], run.inputs.prepared.y_test
  assert np.mean(run.predict(images) == labels) == summary["best"]["test_accuracy"]
  shares = run.scores(images[:5])
  np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-6)
  assert f"cv {run.best['cv_accuracy']:.4f}, test " in repr(run)   # was "val": no val row voted


def test_a_knn_run_evaluated_on_validation_names_its_cross_validated_accuracy():
  # With eval_split="val" the summary's val_accuracy is the validation split's (0.9792),
  # and the repr printed it as "cv" beside a cross-validated 0.9884.
  config = ml_collections.ConfigDict({"method": "knn"})
  best = {"member": 0, "cv_accuracy": 0.9884, "val_accuracy": 0.9792,
          "test_accuracy": None}
  run = lincv.Run("run", config, {"method": "knn", "best": best})
  assert repr(run) == "Run('run', method=knn, member 0, cv 0.9884)"


def test_the_plots_of_a_run_name_the_run_method_and_member(digits_run):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  run, _ = digits_run
  name = os.path.basename(run.workdir)
  folder = os.path.join(run.workdir, "plots")
  lr = run.best["hparams"]["learning_rate"]
  for png in ("curves.png", "val_accuracy_heatmap.png", "templates.png", "confusion.png"):
    with Image.open(os.path.join(folder, png)) as im:
      title = im.info["Title"]
    assert title.startswith(f"{name} | sweep | "), (png, title)
    assert f"lr={lr:g}" in title, (png, title)


def _feature_rows(seed):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(3, 6)).astype(np.float32)
  y = rng.integers(0, 3, 300).astype(np.int32)
  x = centers[y] + 0.5 * rng.normal(size=(300, 6)).astype(np.float32)
  return {"x_train": x[:240], "y_train": y[:240], "x_test": x[240:], "y_test": y[240:]}


def test_a_run_refuses_to_evaluate_on_rows_other_than_its_own(tmp_path):
  """A features file rewritten after training: evaluating on it would report the accuracy
  of other rows as the run's."""
  path = tmp_path / "feats.npz"
  np.savez(path, **_feature_rows(0))
  config = config_lib.load(os.path.join(ROOT, "configs", "default.py:smoke"))
  config.data.features = str(path)
  summary = lincv.train(config, str(tmp_path / "run"), stream=io.StringIO())
  assert lincv.Run.load(tmp_path / "run").evaluate("test")["accuracy"] == (
      summary["best"]["test_accuracy"])
  np.savez(path, **_feature_rows(1))
  with pytest.raises(lincv.ConfigError, match=r"feats.npz, from .*\) is not what it was "
                                              r"trained on: its rows differ"):
    lincv.Run.load(tmp_path / "run").evaluate("test")


def _copy(run, tmp_path):
  """A copy of `run`'s directory, for a test to damage or change."""
  shutil.copytree(run.workdir, tmp_path / "copy")
  return tmp_path / "copy"


@pytest.mark.parametrize("change,message", [
    (lambda p: {**p, "W": p["W"][:, :7]}, r"W \(64, 7\) and b \(10,\) do not score the "
                                          r"run's 10 classes"),
    (lambda p: {"b": p["b"]}, r"no W and b of the run's linear model \(holds b\)"),
    (lambda p: {**p, "W": np.full_like(p["W"], np.nan)}, "W holds non-finite values"),
    (lambda p: {**p, "W": p["W"][:63]}, "its weights take rows of 63 columns, where the "
                                        "run's pixels rows have 64"),
])
def test_a_run_with_damaged_weights_is_refused(digits_run, tmp_path, change, message):
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  np.savez(workdir / "checkpoint" / "best.npz", **change(dict(run.params)))
  with pytest.raises(lincv.checkpoint.Damaged, match="best.npz is damaged: " + message):
    lincv.Run.load(workdir).predict(np.zeros((2, 8, 8, 1), np.uint8))
  with pytest.raises(lincv.checkpoint.Damaged, match="best.npz is damaged: " + message):
    lincv.Run.load(workdir).evaluate("test")


def test_an_earlier_runs_config_without_a_later_field_loads_with_its_default(digits_run,
                                                                            tmp_path):
  run, summary = digits_run
  workdir = _copy(run, tmp_path)
  saved = json.loads((workdir / "config.json").read_text())
  del saved["data"]["center"], saved["checkpoint_seconds"]
  (workdir / "config.json").write_text(json.dumps(saved))
  again = lincv.Run.load(workdir)
  assert again.config.data.center == run.config.data.center
  assert again.evaluate("test")["accuracy"] == summary["best"]["test_accuracy"]


@pytest.mark.parametrize("cut, message", [
    ("mid_row", r"row \d+ has \d+ cells where the header names \d+"),
    ("at_a_row", r"it holds \d+ rows, where this run has \d+ members"),
    ("in_last_cell", r"it ends inside a row \(no line break after its last\)"),
])
def test_a_results_file_cut_short_is_named(digits_run, tmp_path, cut, message):
  # Cut in a row it raised a TypeError from int(None); cut between rows it gave fewer
  # members, silently.
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  text = (workdir / "results.csv").read_text()
  end = text.index("\n", len(text) // 2)        # the end of a row in the middle
  (workdir / "results.csv").write_text(   # the next row cut after its first cell, or whole
      text[:text.index(",", end)] if cut == "mid_row" else text[:end + 1]
      if cut == "at_a_row" else text[:-3])   # the last cell "1e-05" read as 1.0, silently
  with pytest.raises(lincv.checkpoint.Damaged, match="results.csv is damaged: " + message):
    _ = lincv.Run.load(workdir).results


def test_a_damaged_metrics_file_is_named(digits_run, tmp_path):
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  with open(workdir / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"member": 999, "epoch": 1, "train_loss": 1.0, "val_accuracy": 0.5}\n{"memb')
  lines = len((workdir / "metrics.jsonl").read_text().splitlines())
  with pytest.raises(lincv.checkpoint.Damaged, match=rf"metrics.jsonl is damaged: line "
                                                      rf"{lines - 1} is not one member's"):
    _ = lincv.Run.load(workdir).history


@pytest.mark.parametrize("cut", ["last_line", "last_member", "whole"])
def test_a_metrics_file_cut_between_lines_is_named(digits_run, tmp_path, cut):
  # Cut inside a line it was named as damaged; cut at a line break it was read as a
  # shorter history (the last members' last epochs missing, or every member's), silently.
  # The file is written whole before summary.json: a finished run's holds 1..epochs_run of
  # every member.
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  lines = (workdir / "metrics.jsonl").read_text().splitlines(keepends=True)
  last = json.loads(lines[-1])["member"]
  keep = {"last_line": lines[:-1],
          "last_member": [line for line in lines if json.loads(line)["member"] != last],
          "whole": []}[cut]
  if cut == "whole":
    (workdir / "metrics.jsonl").unlink()
    message = r"missing, though results.csv says member 0 trained \d+ epochs"
  else:
    epochs = run.results[last]["epochs_run"]
    held = epochs - 1 if cut == "last_line" else 0
    (workdir / "metrics.jsonl").write_text("".join(keep))
    message = (rf"it holds {held} epochs of member {last}, where results.csv says it "
               rf"trained {epochs} \(epochs_run\)")
  with pytest.raises(lincv.checkpoint.Damaged, match="metrics.jsonl is damaged: " + message):
    _ = lincv.Run.load(workdir).history


def test_a_member_whose_last_loss_is_nan_has_no_line_for_that_epoch(digits_run, tmp_path):
  """The report writes no line for a NaN loss (a closed-form member whose weights are not
  finite: epochs_run 1, final_loss nan): that member's history is shorter by that epoch,
  and the file is whole."""
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  member = run.results[-1]["member"]
  epochs = run.results[-1]["epochs_run"]
  lines = (workdir / "metrics.jsonl").read_text().splitlines(keepends=True)
  lines = [line for line in lines
           if (json.loads(line)["member"], json.loads(line)["epoch"]) != (member, epochs)]
  (workdir / "metrics.jsonl").write_text("".join(lines))
  text = (workdir / "results.csv").read_text().splitlines(keepends=True)
  header = text[0].rstrip("\n").split(",")
  cells = text[-1].rstrip("\n").split(",")
  cells[header.index("final_loss")] = "nan"
  (workdir / "results.csv").write_text("".join(text[:-1]) + ",".join(cells) + "\n")
  history = lincv.Run.load(workdir).history
  assert history[member]["epoch"] == list(range(1, epochs))
  assert history[0]["epoch"] == list(range(1, run.results[0]["epochs_run"] + 1))


def test_a_run_of_an_earlier_lincv_without_a_later_member_field_predicts(digits_run, tmp_path):
  # A run trained before lbfgs_iters and tol existed: its selected member lacks them, and
  # predict and --mode eval raised KeyError: 'lbfgs_iters'.
  run, summary = digits_run
  workdir = _copy(run, tmp_path)
  saved = json.loads((workdir / "summary.json").read_text())
  del saved["best"]["hparams"]["lbfgs_iters"], saved["best"]["hparams"]["tol"]
  (workdir / "summary.json").write_text(json.dumps(saved))
  again = lincv.Run.load(workdir)
  images = run.inputs.prepared.images["test"][:20]
  np.testing.assert_array_equal(again.predict(images), run.predict(images))
  assert again.best["hparams"] == summary["best"]["hparams"]     # the config's values


@pytest.mark.parametrize("change, message", [
    (lambda s: s["best"].pop("hparams"), r"no field 'best.hparams'"),
    (lambda s: s["data"].pop("image_shape"), r"no field 'data.image_shape'"),
    (lambda s: s.update(best=[2]), r"best is list, not an object"),
    (lambda s: s.update(num_members="4"), r"'num_members' is '4'"),
])
def test_a_summary_without_a_field_the_run_reads_is_damaged(digits_run, tmp_path, change,
                                                           message):
  # A KeyError or a TypeError from inside predict; a num_members of "4" said results.csv
  # "holds 4 rows, where this run has 4 members".
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  saved = json.loads((workdir / "summary.json").read_text())
  change(saved)
  (workdir / "summary.json").write_text(json.dumps(saved))
  with pytest.raises(lincv.checkpoint.Damaged, match="summary.json is damaged: .*" + message):
    lincv.Run.load(workdir)


def test_a_config_of_an_unknown_method_is_named(digits_run, tmp_path):
  # It was read, and applied, as a sweep.
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  saved = json.loads((workdir / "config.json").read_text())
  (workdir / "config.json").write_text(json.dumps(dict(saved, method="boosting")))
  with pytest.raises(lincv.ConfigError, match="names method 'boosting', not one this lincv "
                                              "knows"):
    lincv.Run.load(workdir)


@pytest.mark.parametrize("name, tail, message", [
    ("metrics.jsonl", b'{"member": -1, "epoch": 4, "train_loss": 1.0, "val_accuracy": 0.5}\n',
     r"line \d+ is not one member's epoch of this run \(IndexError: member -1, where this "
     r"run has members 0..3\)"),
    ("metrics.jsonl", b"\xff\xfe\n", r"not text \(invalid start byte at byte \d+\)"),
    ("results.csv", b"\xff\xfe\n", r"not text \(invalid start byte at byte \d+\)"),
])
def test_a_run_file_with_a_foreign_line_is_damaged(digits_run, tmp_path, name, tail, message):
  # Member -1 was appended to the last member's history, and blamed on it ("holds 4 epochs
  # of member 3"); bytes that are not UTF-8 raised UnicodeDecodeError.
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  with open(workdir / name, "ab") as f:
    f.write(tail)
  again = lincv.Run.load(workdir)
  with pytest.raises(lincv.checkpoint.Damaged, match=f"{name} is damaged: {message}"):
    _ = again.results, again.history


def test_a_results_file_with_members_out_of_order_is_damaged(digits_run, tmp_path):
  # History and best were read by member index: a swapped row gave another member's row.
  run, _ = digits_run
  workdir = _copy(run, tmp_path)
  header, *rows = (workdir / "results.csv").read_text().splitlines(keepends=True)
  (workdir / "results.csv").write_text(header + "".join([rows[1], rows[0], *rows[2:]]))
  with pytest.raises(lincv.checkpoint.Damaged, match=r"results.csv is damaged: its member "
                                                      r"column is not 0..3 in order"):
    _ = lincv.Run.load(workdir).results
