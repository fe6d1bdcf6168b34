"""The run directory of `experiment.run`: a resumed run writes the same files as an
uninterrupted one, a sweep that cannot run leaves none, files follow the umask."""

import csv
import io
import json
import os
import re
import stat

import numpy as np
import pytest
from sklearn.datasets import load_digits

from configs import default
from lincv import config as config_lib
from lincv import experiment, sweep
from _faults import KillAt, Killed, share_populations


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def digits(tfds_dir, monkeypatch):
  """The digits prepared once for the module; the runs of a test reuse the Population
  (pure compiled functions) of each group they train, so that the test compiles once."""
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
  share_populations(monkeypatch)


def _config():
  """Two groups (adam, sgd) of four members (two losses); patience stops some members
  before the last epoch."""
  c = default.get_config("smoke")
  c.epochs, c.patience = 6, 1
  c.sweep = {**c.sweep, "optimizer": ("adam", "sgd")}
  c.checkpoint_seconds = 0       # a commit after every epoch, so that a kill lands past one
  return c


def _csv(path):
  with open(path) as f:
    reader = csv.DictReader(f)
    return reader.fieldnames, [{k: v for k, v in r.items() if k != "seconds"} for r in reader]


def _modes(folder):
  """Relative path -> permission bits, of every file and folder under `folder`."""
  paths = [os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files]
  return {os.path.relpath(p, folder): stat.S_IMODE(os.stat(p).st_mode) for p in paths}


def test_a_resumed_run_writes_the_same_files(tmp_path, digits):
  whole, resumed = tmp_path / "whole", tmp_path / "resumed"
  old = os.umask(0o022)
  try:
    experiment.run(_config(), str(whole), stream=io.StringIO())
  finally:
    os.umask(old)
  modes = _modes(whole)        # the user's umask, not the temporary files' 0600
  for name in ("config.json", "results.csv", "summary.json", "metrics.jsonl",
               "checkpoint/best.npz", "checkpoint/sweep.json", "plots/curves.png"):
    assert modes.pop(name) == 0o644, name
  assert set(modes.values()) <= {0o644, 0o755}, modes

  with pytest.raises(Killed):
    experiment.run(_config(), str(resumed), progress=KillAt(1, 2), stream=io.StringIO())
  worked = json.loads((resumed / "checkpoint" / "sweep.json").read_text())["seconds"]
  summary = experiment.run(_config(), str(resumed), stream=io.StringIO())

  fields, rows = _csv(whole / "results.csv")
  assert _csv(resumed / "results.csv") == (fields, rows)     # the same columns, in order
  metrics = (whole / "metrics.jsonl").read_text()
  assert (resumed / "metrics.jsonl").read_text() == metrics
  assert json.loads((whole / "summary.json").read_text())["best"] == summary["best"]
  assert summary["timings"]["earlier_processes"] == worked > 0
  assert summary["seconds"] == summary["timings"]["total"] + worked

  # metrics.jsonl holds the epochs each member trained, and no more
  assert any(int(r["epochs_run"]) < 6 for r in rows)
  lines = [json.loads(line) for line in metrics.splitlines()]
  for r in rows:
    epochs = [m["epoch"] for m in lines if m["member"] == int(r["member"])]
    assert epochs == list(range(1, int(r["epochs_run"]) + 1))


def test_every_member_diverged_leaves_no_run(tmp_path, digits):
  c = default.get_config("smoke")
  c.sweep = {"learning_rate": (1e6, 1e7)}
  workdir = tmp_path / "run"
  with pytest.raises(experiment.ConfigError) as e:
    experiment.run(c, str(workdir), stream=io.StringIO())
  assert str(e.value) == "all 2 members diverged; lower the learning rate"
  assert not workdir.exists()
  workdir.mkdir()                               # a workdir holding something of the user's
  (workdir / "notes.txt").write_text("mine")
  with pytest.raises(experiment.ConfigError):
    experiment.run(c, str(workdir), stream=io.StringIO())
  assert os.listdir(workdir) == ["notes.txt"]
  c.sweep = {"learning_rate": (1e-2,)}          # a corrected config is not refused there
  assert experiment._check_workdir(c, str(workdir)) is False


@pytest.mark.parametrize("eta,rungs", [(0, (1,)), (-1, (1,)), (2, (0,)), (2, (3,))])
def test_bad_halving_writes_nothing(tmp_path, eta, rungs):
  c = default.get_config("smoke")
  c.halving.eta, c.halving.rungs = eta, rungs
  with pytest.raises(experiment.ConfigError, match="^halving"):
    experiment.run(c, str(tmp_path / "run"), stream=io.StringIO())
  assert not (tmp_path / "run").exists()


def test_a_run_begun_before_a_field_existed_resumes(tmp_path, digits):
  """A field added to the config later, at its default, is no difference: a workdir
  whose config.json and checkpoint lack it (as one written by an earlier lincv) resumes."""
  workdir = tmp_path / "run"
  with pytest.raises(Killed):
    experiment.run(_config(), str(workdir), progress=KillAt(1, 2), stream=io.StringIO())
  # Both as an earlier lincv wrote them: every field (the checkpoint too), but
  # data.features, which came later.
  old = config_lib.as_json(_config())
  del old["data"]["features"]
  (workdir / "config.json").write_text(json.dumps(old))
  saved = json.loads((workdir / "checkpoint" / "sweep.json").read_text())
  (workdir / "checkpoint" / "sweep.json").write_text(json.dumps({**saved, "config": old}))
  experiment.run(_config(), str(workdir), stream=io.StringIO())
  assert json.loads((workdir / "summary.json").read_text())["best"]
  changed = _config()
  changed.data.val_fraction = 0.2            # a field changed from its default still counts
  with pytest.raises(experiment.ConfigError, match="fields differ: data"):
    experiment.run(changed, str(workdir), stream=io.StringIO())


def test_a_run_resumes_only_on_the_rows_it_started_on(tmp_path):
  # The config names its data, not what is in it: rows changed under the same path were
  # mixed with the old groups' results, silently.
  x, y = load_digits(return_X_y=True)
  feats = tmp_path / "feats.npz"
  np.savez(feats, x_train=x[:1400].astype(np.float32), y_train=y[:1400],
           x_test=x[1400:].astype(np.float32), y_test=y[1400:])
  c = default.get_config("smoke")
  c.data.name, c.data.features = "", str(feats)
  run = tmp_path / "run"
  experiment.run(c, str(run), stream=io.StringIO())
  experiment.run(c, str(run), stream=io.StringIO())      # the same rows: resumes
  before = {n: (run / n).read_bytes() for n in ("results.csv", "summary.json")}
  np.savez(feats, x_train=x[:1400].astype(np.float32)[::-1].copy(), y_train=y[:1400][::-1],
           x_test=x[1400:].astype(np.float32), y_test=y[1400:])
  with pytest.raises(experiment.ConfigError, match=r"holds a run on other data: the rows "
                     r"the config's data names have changed since it started"):
    experiment.run(c, str(run), stream=io.StringIO())
  assert {n: (run / n).read_bytes() for n in before} == before   # the old run is intact


def test_a_damaged_run_file_is_one_line_naming_it(tmp_path, digits):
  run = tmp_path / "run"
  c = default.get_config("smoke")
  experiment.run(c, str(run), stream=io.StringIO())
  best = run / "checkpoint" / "best.npz"
  kept = best.read_bytes()
  best.write_bytes(b"xx")
  with pytest.raises(experiment.ConfigError, match=rf"^{re.escape(str(best))} is damaged: not "
                     r"the \.npz lincv wrote \(truncated, or not an \.npz of arrays\); remove"):
    experiment.evaluate(str(run))
  best.write_bytes(kept[:len(kept) // 2])
  with pytest.raises(experiment.ConfigError, match=r"best\.npz is damaged"):
    experiment.evaluate(str(run))
  config = run / "config.json"
  config.write_text(config.read_text()[:20])
  with pytest.raises(experiment.ConfigError, match=rf"^{re.escape(str(config))} is damaged: "
                     r"not the JSON lincv wrote \(JSONDecodeError: "):
    experiment.run(c, str(run), stream=io.StringIO())
  assert (run / "results.csv").exists()           # the run stays, for its owner to decide


def test_a_run_file_of_another_shape_or_missing_is_damaged_not_a_traceback(tmp_path, digits):
  run = tmp_path / "run"
  c = default.get_config("smoke")
  experiment.run(c, str(run), stream=io.StringIO())
  summary, config = run / "summary.json", run / "config.json"
  kept = summary.read_text(), config.read_text()
  for path, text, why in ((summary, "{}", "no field 'best'"), (config, "[]", "not a JSON object"),
                          (config, '{"method": "sweep"}', "no field 'data'")):
    path.write_text(text)
    with pytest.raises(experiment.ConfigError, match=rf"^{re.escape(str(path))} is damaged: "
                       rf"not the JSON lincv wrote \({why}\); remove"):
      experiment.evaluate(str(run))
    summary.write_text(kept[0])
    config.write_text(kept[1])
  (run / "checkpoint" / "data.json").write_text('"rows"')
  with pytest.raises(experiment.ConfigError, match=r"data\.json is damaged: not the JSON "
                     r"lincv wrote \(not a JSON object\)"):
    experiment.run(c, str(run), stream=io.StringIO())
  os.remove(run / "checkpoint" / "data.json")
  (group,) = [n for n in os.listdir(run / "checkpoint") if n.startswith("group")]
  os.remove(run / "checkpoint" / group)
  with pytest.raises(experiment.ConfigError, match=rf"{group} is damaged: not the \.npz lincv "
                     r"wrote \(missing, though sweep\.json names it\); remove"):
    experiment.run(c, str(run), stream=io.StringIO())
  (run / "checkpoint" / "sweep.json").write_text("{bad")
  with pytest.raises(experiment.ConfigError, match=r"sweep\.json is damaged: not the JSON "
                     r"lincv wrote \(JSONDecodeError: .*\); remove the run \(or use a new "
                     r"--workdir\) and run it again$"):     # said once, not twice
    experiment.run(c, str(run), stream=io.StringIO())


def test_a_run_without_a_sweep_prints_a_table_of_a_few_fields(tmp_path, digits):
  c = default.get_config("smoke")
  c.sweep = {}
  out = io.StringIO()
  experiment.run(c, str(tmp_path / "run"), stream=out)
  lines = out.getvalue().splitlines()
  header = lines[lines.index("best members by validation accuracy:") + 1]
  # the fields the figures' titles name, not each of the member's 30-odd hyperparameters
  assert header.split() == ["member", "model", "loss", "learning_rate", "reg_strength",
                            "val_accuracy", "train_accuracy", "status"]
  assert "(1 member, 0 diverged, 0 pruned, " in out.getvalue()


def test_without_train_accuracy_a_run_skips_that_pass_and_only_its_column(
    tmp_path, digits, monkeypatch):
  scored = []
  accuracy = sweep.Population.accuracy   # the class (the fixture wraps its constructor)

  def counted(pop, params, x, y):
    scored.append(len(y))
    return accuracy(pop, params, x, y)

  monkeypatch.setattr(sweep.Population, "accuracy", counted)
  c = _config()
  c.epochs = 2
  experiment.run(c, str(tmp_path / "with"), stream=io.StringIO())
  with_train = list(scored)
  scored.clear()
  c.train_accuracy = False
  experiment.run(c, str(tmp_path / "without"), stream=io.StringIO())
  assert with_train and not scored           # each group scored its training rows before
  fields, rows = _csv(tmp_path / "with" / "results.csv")
  fields_off, rows_off = _csv(tmp_path / "without" / "results.csv")
  assert fields_off == [f for f in fields if f != "train_accuracy"]
  assert rows_off == [{k: v for k, v in r.items() if k != "train_accuracy"} for r in rows]
  for name in ("metrics.jsonl",):
    assert ((tmp_path / "with" / name).read_text()
            == (tmp_path / "without" / name).read_text())
  summary = json.loads((tmp_path / "without" / "summary.json").read_text())
  assert summary["best"]["train_accuracy"] is None
  assert summary["best"]["test_accuracy"] == json.loads(
      (tmp_path / "with" / "summary.json").read_text())["best"]["test_accuracy"]


@pytest.mark.parametrize("method", ["random_search", "random_local_search"])
def test_a_random_search_without_train_accuracy_has_no_such_column(tmp_path, digits, method):
  c = default.get_config("smoke")
  c.method, c.sweep, c.random.num_tries, c.train_accuracy = method, {}, 20, False
  c.random.examples = 0                          # all 1,294 training rows
  experiment.run(c, str(tmp_path / "run"), stream=io.StringIO())
  fields, _ = _csv(tmp_path / "run" / "results.csv")
  assert "train_accuracy" not in fields and "val_accuracy" in fields


def test_train_accuracy_does_nothing_for_knn():
  c = default.get_config("smoke")
  c.method = "knn"
  message = config_lib.idle_override(c, "train_accuracy", [])
  assert message == ("--config.train_accuracy does nothing here: it matters only with "
                     "method='sweep', 'random_search' or 'random_local_search'; remove it")
