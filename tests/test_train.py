"""train.py end to end in a subprocess: smoke configs, the run directory, eval, bad input."""

import json
import os
import subprocess
import sys

import pytest

from _images import write_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(*args, data_dir):
  env = dict(os.environ, TFDS_DATA_DIR=str(data_dir), XLA_FLAGS="")
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  base = tmp_path_factory.mktemp("digits")
  workdir = base / "run"
  out = _train("--config", "configs/default.py:smoke", "--workdir", str(workdir),
               data_dir=base / "tfds")
  return out, workdir, base


def test_smoke_run_writes_the_run_directory(digits_run):
  out, workdir, _ = digits_run
  assert out.returncode == 0, out.stderr
  for name in ("config.json", "results.csv", "summary.json", "metrics.jsonl",
               "checkpoint/best.npz"):
    assert (workdir / name).is_file(), name
  for name in ("curves", "val_accuracy_heatmap", "templates", "confusion"):
    png = (workdir / "plots" / f"{name}.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000, name
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["num_members"] == 4
  assert summary["num_diverged"] + summary["num_pruned"] <= 4
  assert 0.5 < summary["best"]["test_accuracy"] <= 1.0
  assert 0.5 < summary["best"]["val_accuracy"] <= 1.0
  assert summary["best"]["hparams"]["loss"] in ("softmax", "svm")
  assert summary["seconds"] > 0 and "cpu" in summary["device"]
  assert "jax" in summary["versions"]
  rows = (workdir / "results.csv").read_text().splitlines()
  assert len(rows) == 5 and rows[0].startswith("member,group,status,val_accuracy")
  curves = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(curves) == 4 * 3
  assert "selected member" in out.stdout and "test" in out.stdout


def test_eval_mode_reports_the_saved_accuracy(digits_run, train_main, monkeypatch):
  _, workdir, base = digits_run
  monkeypatch.setenv("TFDS_DATA_DIR", str(base / "tfds"))     # the run's prepared data
  code, stdout, err = train_main("--workdir", str(workdir), "--mode", "eval")
  assert code == 0, err
  summary = json.loads((workdir / "summary.json").read_text())
  assert f"test accuracy {summary['best']['test_accuracy']:.4f}" in stdout
  code, stdout, err = train_main("--workdir", str(workdir), "--mode", "eval", "--split", "val")
  assert code == 0, err
  assert f"val accuracy {summary['best']['val_accuracy']:.4f}" in stdout


def test_rerun_of_a_finished_run_resumes_it(digits_run, train_main, monkeypatch):
  _, workdir, base = digits_run
  monkeypatch.setenv("TFDS_DATA_DIR", str(base / "tfds"))
  before = json.loads((workdir / "summary.json").read_text())
  code, stdout, err = train_main("--config", "configs/default.py:smoke",
                                 "--workdir", str(workdir))
  assert code == 0, err
  assert "group 1/1" not in stdout + err   # nothing retrained
  after = json.loads((workdir / "summary.json").read_text())
  assert after["best"] == before["best"]


def test_cifar_smoke_config_on_an_image_folder(tmp_path, train_main):
  folder = write_folder(tmp_path / "images")
  workdir = tmp_path / "run"
  code, _, err = train_main("--config", "configs/cifar10_linear.py:smoke",
                            f"--config.data.folder={folder}", "--config.batch_size=8",
                            "--workdir", str(workdir))
  assert code == 0, err
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["data"]["classes"] == ["cat", "dog", "ship"]
  assert summary["best"]["test_accuracy"] > 0.5


@pytest.mark.parametrize("args,message", [
    (["--config.no_such_field=1"], "no_such_field"),
    (["--config.epochs=abc"], "epochs"),
    (["--config.sweep.loss=hinge"],
     "unknown loss 'hinge'; expected one of: svm, squared_svm, softmax"),
    (["--config.optimizer=adamw"], "unknown optimizer 'adamw'; expected one of: sgd"),
    (["--config.data.name=imagenet"], "unknown dataset 'imagenet'; expected one of: digits"),
    (["--config.data.folder=/no/such/folder"], "/no/such/folder"),
    (["--config=configs/no_such_config.py"], "no_such_config"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(train_main, tmp_path, args, message):
  workdir = tmp_path / "run"
  smoke = () if any(a.startswith("--config=") for a in args) else (
      "--config", "configs/default.py:smoke")         # one --config: a second is refused
  code, _, err = train_main(*smoke, *args, "--workdir", str(workdir))
  assert code == 2, (code, err)
  lines = [l for l in err.splitlines() if l.strip()]
  assert len(lines) == 1, err
  assert message in lines[0]
  assert not workdir.exists()


def test_bad_input_in_a_process_of_its_own_is_one_line_exit_2(tmp_path):
  # The cases above run train.py's main in the test's process; this one, python train.py.
  workdir = tmp_path / "run"
  out = _train("--config", "configs/default.py:smoke", "--config.epochs=abc",
               "--workdir", str(workdir), data_dir=tmp_path / "tfds")
  assert out.returncode == 2, (out.returncode, out.stderr)
  assert "Traceback" not in out.stderr
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "epochs" in lines[0], out.stderr
  assert not workdir.exists()
