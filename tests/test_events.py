"""TensorBoard event files (`lincv.events`), read back with TensorBoard's own reader and
served by the real `tensorboard` viewer: the same numbers as metrics.jsonl, results.csv
and summary.json; one clean curve per member after a kill and a resume; process 0 only."""

import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_file_loader

from configs import default
from lincv import distributed, events, experiment, sweep
from _faults import KillAt, Killed, share_populations

ALL = {ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 0}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  """The digits prepared once; every run of the module reuses each group's compiled
  Population (pure compiled functions), so the module compiles each group once."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds")))
    share_populations(mp)
    mp.setattr(events, "FLUSH_SECONDS", 0.0)     # the live files follow every commit
    yield


def _config():
  """One group of four members (two losses) over 4 epochs; patience stops some early."""
  c = default.get_config("smoke")
  c.epochs, c.patience = 4, 1
  c.checkpoint_seconds = 0       # a commit after every epoch, so that a kill lands past one
  return c


@pytest.fixture(scope="module")
def whole(digits, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("runs") / "sweep"    # alone in runs/, for the viewer
  experiment.run(_config(), str(workdir), stream=io.StringIO())
  return workdir


def _load(folder):
  acc = ea.EventAccumulator(str(folder), size_guidance=ALL)
  acc.Reload()
  return acc


def _curve(acc, tag):
  return [(s.step, s.value) for s in acc.Scalars(tag)]


def _steps(path):
  """{tag: [step, ...]} of every value in the event file, in file order (raw records)."""
  out = {}
  for event in event_file_loader.EventFileLoader(str(path)).Load():
    for v in event.summary.value:
      out.setdefault(v.tag, []).append(event.step)
  return out


def _results(workdir):
  with open(workdir / "results.csv", newline="") as f:
    return list(csv.DictReader(f))


def _metrics(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _f32(x):
  return float(np.float32(float(x)))


def test_member_scalars_equal_metrics_and_results(whole):
  lines, rows = _metrics(whole), _results(whole)
  assert sorted(os.listdir(whole / "tensorboard")) == [events.EVENTS] + [
      f"member_{i:04d}" for i in range(len(rows))]
  assert any(int(r["epochs_run"]) < 4 for r in rows)      # a member stopped early
  for r in rows:
    m = int(r["member"])
    acc = _load(whole / "tensorboard" / f"member_{m:04d}")
    mine = [x for x in lines if x["member"] == m]
    assert _curve(acc, "epoch/train_loss") == [(x["epoch"], _f32(x["train_loss"]))
                                               for x in mine]
    assert _curve(acc, "epoch/val_accuracy") == [(x["epoch"], _f32(x["val_accuracy"]))
                                                 for x in mine]
    n = int(r["epochs_run"])
    for tag, column in events.FINAL.items():
      assert _curve(acc, tag) == [(n, _f32(r[column]))]
    [status] = acc.Tensors("status")
    assert status.tensor_proto.string_val == [r["status"].encode()]
    assert set(acc.PluginTagToContent("hparams")) == {"_hparams_/session_start_info",
                                                      "_hparams_/session_end_info"}


def test_run_scalars_images_and_hparams(whole):
  from tensorboard.plugins.hparams import plugin_data_pb2   # pylint: disable=import-outside-toplevel
  summary = json.loads((whole / "summary.json").read_text())
  acc = _load(whole / "tensorboard")
  assert _curve(acc, "selected/test_accuracy") == [(0, _f32(summary["best"]["test_accuracy"]))]
  assert _curve(acc, "selected/val_accuracy") == [(0, _f32(summary["best"]["val_accuracy"]))]
  for name in ("templates", "confusion"):
    [image] = acc.Images(f"plots/{name}")
    assert image.encoded_image_string == (whole / "plots" / f"{name}.png").read_bytes()
  content = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
  exp = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
  domains = {h.name: [v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                      for v in h.domain_discrete.values] for h in exp.hparam_infos}
  assert domains == {"loss": ["softmax", "svm"], "learning_rate": [1e-2, 1e-1]}
  assert [m.name.tag for m in exp.metric_infos] == list(events.FINAL)


def test_killed_and_resumed_run_has_no_duplicated_steps(digits, whole, tmp_path):
  workdir = tmp_path / "resumed"
  with pytest.raises(Killed):
    experiment.run(_config(), str(workdir), progress=KillAt(0, 2), stream=io.StringIO())
  saved = json.loads((workdir / "checkpoint" / "sweep.json").read_text())["groups"]
  assert saved["0"]["epoch"] == 2 and not saved["0"]["finished"]
  m = sweep.group(sweep.expand(_config()))[0].members[0]
  member = workdir / "tensorboard" / f"member_{m:04d}"    # group 0, killed after epoch 2
  assert _steps(member / events.EVENTS)["epoch/train_loss"] == [1, 2]   # live, committed
  # What a kill can leave past the last commit: an epoch written, then a torn record.
  with open(member / events.EVENTS, "ab") as f:
    f.write(events.epochs([9.0], [0.5], start=2)[0] + b"\x07\x00")
  # Resumed and killed again, before its report: the files were rewritten from the
  # checkpoint, and hold exactly the epochs it committed.
  with pytest.raises(Killed):
    experiment.run(_config(), str(workdir), progress=KillAt(0, 3), stream=io.StringIO())
  committed = json.loads((workdir / "checkpoint" / "sweep.json").read_text())["groups"]["0"]
  assert _curve(_load(member), "epoch/train_loss") == [
      (x["epoch"], _f32(x["train_loss"])) for x in _metrics(whole)
      if x["member"] == m and x["epoch"] <= committed["epoch"]]
  experiment.run(_config(), str(workdir), stream=io.StringIO())
  for r in _results(workdir):
    name = f"member_{int(r['member']):04d}"
    steps = _steps(workdir / "tensorboard" / name / events.EVENTS)
    n = int(r["epochs_run"])
    assert steps["epoch/train_loss"] == steps["epoch/val_accuracy"] == list(range(1, n + 1))
    assert steps["final/loss"] == [n]
    assert (_curve(_load(workdir / "tensorboard" / name), "epoch/train_loss")
            == _curve(_load(whole / "tensorboard" / name), "epoch/train_loss"))


def test_only_process_zero_writes_events(digits, tmp_path, monkeypatch):
  monkeypatch.setattr(distributed, "is_writer", lambda: False)
  experiment.run(_config(), str(tmp_path / "run"), stream=io.StringIO())
  assert not (tmp_path / "run" / "tensorboard").exists()


def test_domains_of_a_random_search():
  c = default.get_config("smoke")
  c.search = "random"
  c.sweep = {"learning_rate": {"log_uniform": [1e-3, 1e-1]}, "loss": ["svm", "softmax"]}
  rows = [{"learning_rate": 2e-3, "loss": "svm"}, {"learning_rate": 5e-2, "loss": "svm"}]
  assert events.domains(c, rows) == {"learning_rate": (1e-3, 1e-1), "loss": ["svm"]}


# ------------------------------------------------------------------ the real viewer


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get(url, body=None):
  data = None if body is None else json.dumps(body).encode()
  request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=10) as r:
    return json.loads(r.read())


@contextlib.contextmanager
def _tensorboard(logdir):
  """`tensorboard --logdir` on 127.0.0.1 at a free port; its URL once it lists runs."""
  port = _free_port()
  proc = subprocess.Popen(
      [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", str(logdir),
       "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  url = f"http://127.0.0.1:{port}"
  try:
    deadline, runs = time.monotonic() + 60, []
    while time.monotonic() < deadline and proc.poll() is None:
      with contextlib.suppress(OSError, ValueError):
        runs = _get(f"{url}/data/runs")
        if len(runs) >= 5:
          break
      time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    yield url
  finally:
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()


def test_tensorboard_serves_runs_scalars_and_hparams(whole):
  with _tensorboard(whole.parent) as url:
    runs = _get(f"{url}/data/runs")
    top = f"{whole.name}/tensorboard"
    assert set(runs) == {top} | {f"{top}/member_{i:04d}" for i in range(4)}
    tags = _get(f"{url}/data/plugin/scalars/tags")
    assert set(tags[top]) == {"selected/val_accuracy", "selected/test_accuracy"}
    assert {"epoch/train_loss", "epoch/val_accuracy", *events.FINAL} <= set(
        tags[f"{top}/member_0000"])
    exp = _get(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
    domains = {h["name"]: h["domainDiscrete"] for h in exp["hparamInfos"]}
    assert domains == {"loss": ["softmax", "svm"], "learning_rate": [1e-2, 1e-1]}
    assert sorted(m["name"]["tag"] for m in exp["metricInfos"]) == sorted(events.FINAL)


def test_a_knn_runs_selected_accuracy_is_named_cross_validated(tmp_path):
  # It was written as selected/val_accuracy: the accuracy of k-fold cross-validation on
  # the training rows, where no validation row was scored.
  rows = [{"member": m, "metric": "l2", "k": k, "cv_accuracy": acc, "val_accuracy": acc,
           "status": "ok"} for m, (k, acc) in enumerate([(1, 0.75), (3, 0.5)])]
  c = default.get_config("smoke")
  c.method, c.sweep = "knn", {}
  outcome = type("Outcome", (), {"rows": rows, "best": rows[0], "history": None})()
  events.write_run(c, str(tmp_path), outcome, {"split": "test", "accuracy": 0.25})
  acc = _load(tmp_path / events.FOLDER)
  assert _curve(acc, "selected/cv_accuracy") == [(0, 0.75)]
  assert _curve(acc, "selected/test_accuracy") == [(0, 0.25)]
  assert "selected/val_accuracy" not in acc.Tags()["scalars"]
  assert _curve(acc, "knn/l2/cv_accuracy") == [(1, 0.75), (3, 0.5)]
