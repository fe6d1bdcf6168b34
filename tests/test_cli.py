"""The command line says what it does: no silent no-ops in a sweep or an override, messages
a person can read, Ctrl-C, help, and quiet first-use output."""

import csv
import io
import os
import re
import signal
import subprocess
import sys
import warnings

import ml_collections
import pytest

from configs import default, digits_baselines
from lincv import config as config_lib
from lincv import experiment, sweep
from lincv import inputs as inputs_lib
from lincv.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = ("--config", "configs/default.py:smoke")


def _env(tmp_path):
  return dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"), XLA_FLAGS="")


def _train(tmp_path, *args):
  return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                        capture_output=True, text=True, env=_env(tmp_path), timeout=300, cwd=ROOT)


def _one_line(out) -> str:
  stderr = out if isinstance(out, str) else out.stderr
  lines = [l for l in stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and "Traceback" not in stderr, stderr
  return lines[0]


def _config(sweep_spec, **fields):
  c = config_lib.base()
  c.epochs, c.batch_size = 2, 32
  for name, value in fields.items():   # "data.folder" names a field of a group
    *groups, last = name.split(".")
    holder = c
    for group in groups:
      holder = holder[group]
    holder[last] = value
  c.sweep = sweep_spec
  return c


# ------------------------------------------------------------------ 11: no silent no-ops


@pytest.mark.parametrize("spec,fields,message", [
    ({"margin": (1.0, 2.0)}, {"loss": "softmax"},
     "sweep.margin does nothing with loss='softmax' (it is the SVM margin); remove it, or use "
     "loss svm or squared_svm"),
    ({"momentum": (0.5, 0.9)}, {"optimizer": "adam"},
     "sweep.momentum does nothing with optimizer='adam'"),
    ({"b1": (0.8, 0.9)}, {"optimizer": "sgd"}, "sweep.b1 does nothing with optimizer='sgd'"),
    ({"b2": (0.99, 0.999)}, {"optimizer": "momentum"}, "sweep.b2 does nothing with optimizer="),
    ({"rms_decay": (0.8, 0.9)}, {"optimizer": "adam"}, "sweep.rms_decay does nothing with"),
    ({"beta": (0.5, 1.0)}, {"reg": "l2"}, "sweep.beta does nothing with reg='l2'"),
    ({"reg_strength": (1e-3, 1e-2)}, {"reg": "none"}, "sweep.reg_strength does nothing with"),
    ({"init_scale": (1e-3, 1e-2)}, {"model": "mlp"}, "sweep.init_scale does nothing with model="),
    ({"hidden": (10, 20)}, {"model": "linear"}, "sweep.hidden does nothing with model='linear'"),
    ({"lr_decay": (0.5, 0.9)}, {"schedule": "cosine"}, "sweep.lr_decay does nothing with"),
    ({"decay_every": (1, 2)}, {"schedule": "exponential"}, "sweep.decay_every does nothing"),
    # the deciding field swept, but over values for none of which the field matters
    ({"optimizer": ("sgd", "adam"), "momentum": (0.5, 0.9)}, {},
     "sweep.momentum does nothing with optimizer='adam' or 'sgd'"),
    ({"margin": {"log_uniform": (0.1, 10.0)}}, {"loss": "softmax", "search": "random"},
     "sweep.margin does nothing with loss='softmax'"),
])
def test_a_swept_field_that_does_nothing_for_any_member_is_refused(spec, fields, message):
  with pytest.raises(sweep.SweepError) as e:
    sweep.expand(_config(spec, **fields))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_swept_field_that_does_nothing_for_some_members_is_collapsed_there():
  c = _config({"loss": ("softmax", "svm"), "margin": (0.5, 2.0)})
  members = sweep.expand(c)
  pairs = [(m["loss"], m["margin"]) for m in members]
  assert pairs == [("softmax", 1.0), ("svm", 0.5), ("svm", 2.0)]  # softmax: the config's margin
  (note,) = sweep.notes(c)
  assert note.startswith("sweep.margin does nothing with loss='softmax'; those members take "
                         "margin=1.0")
  assert "1 that became identical" in note and "3 members remain" in note
  assert sweep.notes(_config({"loss": ("softmax", "svm")})) == []


def test_collapse_keeps_the_members_that_differ_elsewhere():
  c = _config({"optimizer": ("sgd", "adam", "momentum"), "momentum": (0.5, 0.9),
               "learning_rate": (0.1, 0.01)})
  members = sweep.expand(c)
  # momentum matters for the momentum optimizer only: 2 x 2 there, 2 learning rates elsewhere
  assert len(members) == 2 * 2 + 2 + 2
  assert {m["momentum"] for m in members if m["optimizer"] != "momentum"} == {0.9}
  assert len({tuple(sorted(m.items())) for m in members}) == len(members)


def test_a_random_search_gives_idle_fields_the_config_value():
  c = _config({"optimizer": {"choice": ("sgd", "momentum")}, "momentum": {"uniform": (0.1, 0.8)},
               "learning_rate": {"log_uniform": (1e-3, 1e-1)}}, search="random", num_samples=20)
  members = sweep.expand(c)
  assert len(members) == 20   # the learning rates differ: nothing became identical
  assert all(m["momentum"] == 0.9 for m in members if m["optimizer"] == "sgd")
  assert all(0.1 <= m["momentum"] <= 0.8 for m in members if m["optimizer"] == "momentum")


@pytest.mark.parametrize("spec,message", [
    ({"learning_rate": ("a",)}, "sweep.learning_rate takes numbers, got 'a'"),
    ({"seed": (0, "1")}, "sweep.seed takes numbers, got '1'"),
    ({"loss": (1,)}, "sweep.loss takes names, got 1"),
    ({"learning_rate": (0.1, 0.1)}, "sweep.learning_rate lists 0.1 twice"),
])
def test_values_of_the_wrong_kind_or_listed_twice_are_refused(spec, message):
  with pytest.raises(sweep.SweepError, match=re.escape(message)):
    sweep.expand(_config(spec))


@pytest.mark.parametrize("method,path,value,message", [
    ("random_search", "random.examples", -1, "random.examples must be >= 0 (training rows "
                                             "the loss is measured on; 0 = all), got -1"),
    # Raised by the search itself, after the run directory was written, as a traceback.
    ("random_local_search", "random.step", -1.0, "random.step must be a finite number > 0"),
    ("random_search", "random.scale", 0.0, "random.scale must be a finite number > 0, got 0.0"),
    ("knn", "knn.cv_limit", -5, "knn.cv_limit must be >= 0 (training rows of the "
                                "cross-validation; 0 = all), got -5"),
    ("knn", "knn.num_folds", 1, "knn.num_folds must be >= 2 (folds of the cross-validation "
                                "of k), got 1"),
])
def test_a_baseline_setting_out_of_range_is_refused_naming_it(method, path, value, message):
  c = _config({})
  c.method = method
  group, field = path.split(".")
  c[group][field] = value   # refused before any data is read, with the field's name
  with pytest.raises(experiment.ConfigError, match=re.escape(message)):
    experiment.check(c)


def test_a_baseline_method_refuses_a_sweep():
  c = _config({"seed": (0, 1)})
  c.method = "knn"
  with pytest.raises(experiment.ConfigError, match="sweep does nothing with method='knn'"):
    experiment.check(c)


# ------------------------------------------------------------------ overrides, in-process


@pytest.mark.parametrize("fields,path,message", [
    ({"optimizer": "adam"}, "momentum", "--config.momentum does nothing with optimizer='adam'"),
    ({"model": "mlp"}, "init_scale", "--config.init_scale does nothing with model='mlp'"),
    ({}, "knn.ks", "--config.knn.ks does nothing here: it matters only with method='knn'"),
    ({}, "random.scale", "--config.random.scale does nothing here: it matters only with "
                         "method='random_search' or 'random_local_search'"),
    ({}, "features_cfg.kmeans_centroids", "it matters only with features='kmeans'"),
    ({}, "features_cfg.hist_bins", "it matters only with features='hog_color'"),
    ({}, "num_samples", "it matters only with search='random'"),
    ({}, "halving.eta", "it matters only with method='sweep' and halving.rungs"),
    ({"method": "knn"}, "learning_rate", "--config.learning_rate does nothing with "
                                         "method='knn'"),
    ({"data.folder": "cifar10"}, "data.name", "--config.data.name does nothing here: it "
                                              "matters only with neither data.folder nor "
                                              "data.features, which override it"),
    ({"method": "random_search"}, "random.step", "--config.random.step does nothing here: "
                                                 "it matters only with "
                                                 "method='random_local_search'"),
    # The full-batch solvers: no minibatches, no gradient but the hand-derived one, their
    # own divergence test; closed_form has no epochs and no start.
    ({"optimizer": "lbfgs"}, "grad", "--config.grad does nothing with optimizer='lbfgs'"),
    ({"optimizer": "lbfgs"}, "diverge_factor", "--config.diverge_factor does nothing with "
                                               "optimizer='lbfgs'"),
    ({"optimizer": "lbfgs"}, "shuffle_seed", "--config.shuffle_seed does nothing here: it "
                                             "matters only with method='sweep' and a "
                                             "minibatch optimizer"),
    ({"optimizer": "lbfgs"}, "data.block_steps", "it matters only with method='sweep', a "
                                                 "minibatch optimizer"),
    ({"optimizer": "closed_form", "loss": "least_squares"}, "epochs",
     "--config.epochs does nothing with optimizer='closed_form'"),
    ({"optimizer": "closed_form", "loss": "least_squares"}, "seed",
     "--config.seed does nothing with optimizer='closed_form'"),
    # init_scale needs a linear model and a start: closed_form has none.
    ({"optimizer": "closed_form", "loss": "least_squares"}, "init_scale",
     "--config.init_scale does nothing with optimizer='closed_form' (it is the scale of "
     "the initial weights"),
    # A schedule's fields under the config's own schedule: the full-batch solvers use
    # none (swept, lr_decay trained identical members).
    ({"optimizer": "lbfgs", "schedule": "step"}, "lr_decay",
     "--config.lr_decay does nothing with optimizer='lbfgs'"),
    ({"optimizer": "lbfgs", "schedule": "step"}, "decay_every",
     "--config.decay_every does nothing with optimizer='lbfgs'"),
])
def test_an_override_that_changes_nothing_is_named(fields, path, message):
  c = _config({}, **fields)
  members = sweep.expand(c)
  assert message in config_lib.idle_override(c, path, members)


@pytest.mark.parametrize("fields,path", [
    ({"optimizer": "lbfgs"}, "init_scale"),
    ({"optimizer": "nesterov"}, "momentum"), ({"method": "knn"}, "knn.ks"),
    ({"method": "random_search"}, "seed"), ({"features": "kmeans"}, "features_cfg.kmeans_iters"),
    ({"search": "random", "num_samples": 1}, "num_samples"), ({}, "learning_rate"),
    ({}, "data.limit"),
    ({"method": "random_local_search"}, "random.step"), ({}, "data.name"),
    ({"method": "random_search"}, "random.scale"),
    ({"optimizer": "lbfgs"}, "epochs"), ({"optimizer": "lbfgs"}, "seed"), ({}, "grad"),
    ({}, "shuffle_seed"), ({"optimizer": "lbfgs"}, "tol"),
])
def test_an_override_that_matters_passes(fields, path):
  c = _config({}, **fields)
  assert config_lib.idle_override(c, path, sweep.expand(c)) is None


@pytest.mark.parametrize("path", ["learning_rate", "epochs", "batch_size", "optimizer", "seed",
                                  "halving.rungs", "refine.field", "knn.ks", "random.scale",
                                  "train_accuracy", "checkpoint_every", "method", "sweep",
                                  "sweep.learning_rate", "data.placement", "data.block_steps",
                                  "matmul_precision"])
def test_features_mode_refuses_an_override_it_does_not_read(path):
  c = _config({"learning_rate": (0.1, 0.01)})
  message = config_lib.idle_override(c, path, sweep.expand(c), "features")
  assert message == (f"--config.{path} does nothing with --mode features, which writes the "
                     "config's features and trains nothing (it reads data.*, features, "
                     "features_cfg.*, dtype and eval_split); remove it")


@pytest.mark.parametrize("fields,path", [
    ({}, "data.limit"), ({}, "data.val_fraction"), ({}, "data.flip"), ({}, "features"),
    ({"features": "kmeans"}, "features_cfg.kmeans_centroids"), ({}, "dtype"),
    ({}, "eval_split"), ({"sweep": {"features": ("pixels",)}}, "sweep.features"),
    ({"sweep": {"features": ("pixels",)}}, "sweep"),
])
def test_features_mode_takes_an_override_it_reads(fields, path):
  c = _config(fields.pop("sweep", {}), **fields)
  assert config_lib.idle_override(c, path, sweep.expand(c), "features") is None


def test_split_args_takes_the_config_arguments_out():
  spec, overrides, rest = config_lib.split_args(
      ["--workdir", "w", "--config", "c.py:smoke", "--config.epochs=3", "--config.data.flip",
       "--noconfig.data.flip", "--config.loss", "svm", "--mode=train"])
  assert spec == "c.py:smoke"
  assert overrides == [("epochs", "3"), ("data.flip", "true"), ("data.flip", "false"),
                       ("loss", "svm")]
  assert rest == ["--workdir", "w", "--mode=train"]


def test_override_adds_and_replaces_sweep_axes():
  c = config_lib.base()
  c.lock()
  config_lib.override(c, "sweep.optimizer", "('sgd', 'adam')")
  config_lib.override(c, "sweep.loss", "(svm, softmax)")      # names may go unquoted
  config_lib.override(c, "sweep.learning_rate", "0.1")        # one value
  config_lib.override(c, "sweep.reg_strength", "{'log_uniform': (1e-4, 1e-1)}")
  assert c.sweep.optimizer == ("sgd", "adam") and c.sweep.loss == ("svm", "softmax")
  assert c.sweep.learning_rate == (0.1,)
  assert tuple(c.sweep.reg_strength.log_uniform) == (1e-4, 1e-1)
  config_lib.override(c, "sweep.optimizer", "adam")            # replaced
  assert c.sweep.optimizer == ("adam",)
  config_lib.override(c, "sweep", "{'seed': (0, 1)}")          # the whole sweep
  assert c.sweep.to_dict() == {"seed": (0, 1)}


def test_override_parses_by_the_type_of_the_field():
  c = config_lib.base()
  c.lock()
  for path, text in (("epochs", "7"), ("learning_rate", "3e-3"), ("data.flip", "True"),
                     ("data.folder", "123"), ("knn.ks", "(1, 3)"), ("halving.rungs", "()"),
                     ("shuffle_seed", "5"), ("halving.eta", "2.5")):
    config_lib.override(c, path, text)
  assert (c.epochs, c.learning_rate, c.data.flip, c.data.folder) == (7, 3e-3, True, "123")
  assert c.shuffle_seed == 5
  assert c.halving.eta == 2.5    # a real number: its default, the int 2, refused 2.5
  assert c.knn.ks == (1, 3) and c.halving.rungs == ()


@pytest.mark.parametrize("path,text,message", [
    ("epoch", "3", "unknown field 'epoch' (did you mean 'epochs'?)"),
    ("data.fold", "x", "unknown field 'data.fold' (did you mean 'data.folder'?)"),
    ("sweep.learning_rat", "1", "unknown field 'sweep.learning_rat' (did you mean "
                                "'sweep.learning_rate'?)"),
    ("no_such_field", "1", "unknown field 'no_such_field'; the fields and their defaults are in "
                           "lincv/config.py"),
    ("epochs", "abc", "--config.epochs takes an integer, got 'abc'"),
    ("learning_rate", "fast", "--config.learning_rate takes a number, got 'fast'"),
    ("data.flip", "maybe", "--config.data.flip takes true or false, got 'maybe'"),
    ("shuffle_seed", "1.5", "--config.shuffle_seed takes an integer, got '1.5'"),  # unset: None
    ("data", "1", "--config.data is a group of fields"),
    ("sweep", "1", "--config.sweep takes a dict"),
    # An unset shell variable ($FEATS) would otherwise train on the config's own dataset.
    ("data.features", "", "--config.data.features is empty (an unset shell variable?); give "
                          "a features file"),
    ("data.folder", " ", "--config.data.folder is empty (an unset shell variable?); give an "
                         "image folder"),
])
def test_override_errors_are_one_line(path, text, message):
  c = config_lib.base()
  c.lock()
  with pytest.raises(config_lib.OverrideError) as e:
    config_lib.override(c, path, text)
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_sweep_field_before_a_whole_sweep_override_is_refused_not_lost():
  c = config_lib.base()
  config_lib.swept_overrides(c, ["sweep", "sweep.learning_rate"])    # applied on top: fine
  with pytest.raises(config_lib.OverrideError,
                     match=r"replaces the whole sweep, so the --config.sweep.learning_rate "
                           r"before it would be lost"):
    config_lib.swept_overrides(c, ["sweep.learning_rate", "epochs", "sweep"])


def test_checkpoint_every_below_one_is_refused():
  c = config_lib.base()
  for value in (0, -1):
    c.checkpoint_every = value
    with pytest.raises(experiment.ConfigError, match=r"checkpoint_every must be an integer "
                                                      rf">= 1 .*got {value}$"):
      experiment.check(c)


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "5", True])
def test_checkpoint_seconds_that_are_not_a_number_at_least_zero_are_refused(value):
  c = config_lib.base().to_dict()   # a float field: a ConfigDict keeps its type
  c["checkpoint_seconds"] = value
  with pytest.raises(experiment.ConfigError, match=r"^checkpoint_seconds must be a number "
                                                    r">= 0 .*got "):
    experiment.check(ml_collections.ConfigDict(c))


def test_an_override_of_a_swept_field_is_refused():
  c = config_lib.base()
  c.sweep = {"learning_rate": (0.1, 0.01)}
  config_lib.swept_overrides(c, ["epochs", "reg_strength"])
  with pytest.raises(config_lib.OverrideError, match="use --config.sweep.learning_rate=VALUE"):
    config_lib.swept_overrides(c, ["learning_rate"])


# ------------------------------------------------------------------ counts the rows decide


def _digits(config, tmp_path, monkeypatch):
  """The config's digits, loaded: 1,438 training examples, 1,294 of them for training."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  return inputs_lib.load(config)


def test_a_batch_larger_than_the_training_rows_is_refused_before_any_run_file(train_main,
                                                                             tmp_path):
  # The first group refused it, after config.json and checkpoint/data.json were written:
  # in a workdir that held other files, they stayed.
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "mine.txt").write_text("mine\n")
  code, _, err = train_main(*SMOKE, "--config.batch_size=2000", "--workdir", str(workdir))
  assert code == 2
  assert _one_line(err) == (
      "train.py: error: batch_size=2000 is more than the 1294 training rows (1438 examples, "
      "less the 144 of the validation split): an epoch would train no step; choose "
      "batch_size <= 1294")
  assert os.listdir(workdir) == ["mine.txt"]


def test_a_swept_batch_too_large_for_the_limited_rows_is_refused(tmp_path, monkeypatch):
  c = default.get_config("smoke")
  c.data.limit, c.sweep.batch_size = 300, (64, 500)
  with pytest.raises(experiment.ConfigError) as e:
    experiment.check_rows(c, sweep.expand(c), _digits(c, tmp_path, monkeypatch))
  assert str(e.value) == ("batch_size=500 is more than the 270 training rows (300 examples, "
                          "data.limit=300, less the 30 of the validation split): an epoch "
                          "would train no step; choose batch_size <= 270")


def test_a_batch_size_that_leaves_many_rows_out_of_every_epoch_is_warned_of(tmp_path,
                                                                           monkeypatch):
  c = default.get_config("smoke")
  c.batch_size = 1000     # 1294 = 1000 + 294: nearly a quarter never in an epoch, silently
  inputs = _digits(c, tmp_path, monkeypatch)
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: batch_size=1000 leaves 294 of the 1294 training rows (23%) out of every epoch, "
      "which trains the 1 full batch of a fresh shuffle (a different 294 sit out each time); "
      "batch_size=1294 would leave out 0")):
    experiment.check_rows(c, sweep.expand(c), inputs)
  c.batch_size = 64       # 1294 = 20 x 64 + 14: 1% sits out
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    experiment.check_rows(c, sweep.expand(c), inputs)


def test_a_limit_above_the_examples_there_are_is_warned_of(tmp_path, monkeypatch):
  c = default.get_config("smoke")
  c.data.limit = 5000     # a cap that caps nothing: digits has 1,438 training examples
  inputs = _digits(c, tmp_path, monkeypatch)
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: data.limit=5000 is more than the 1438 training examples of digits: all 1438 "
      "are used (data.limit=0 means all)")):
    experiment.check_rows(c, sweep.expand(c), inputs)
  c.data.limit = 1438
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    experiment.check_rows(c, sweep.expand(c), inputs)


def test_random_examples_above_the_training_rows_are_warned_of(tmp_path, monkeypatch):
  c = digits_baselines.get_config("random_search")
  c.random.examples = 5000
  inputs = _digits(c, tmp_path, monkeypatch)
  with pytest.warns(UserWarning, match=re.escape(
      "lincv: random.examples=5000 is more than the 1294 training rows: the loss is measured "
      "on all 1294 (random.examples=0 means all)")):
    experiment.check_rows(c, [], inputs)
  for examples in (0, 1294):
    c.random.examples = examples
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      experiment.check_rows(c, [], inputs)


# ------------------------------------------------------------------ train.py, in a subprocess


HELP = ("--config FILE", "--config.FIELD=VALUE", "--config.sweep.FIELD", "--workdir", "--mode",
        "--split", "lincv/config.py", "Configs and")


def test_help_lists_the_flags_and_where_the_fields_are(tmp_path, train_main):
  out = _train(tmp_path, "--help")
  assert out.returncode == 0 and out.stderr == ""
  for name in HELP:
    assert name in out.stdout, name
  code, stdout, stderr = train_main("-h")     # in this process: the same text
  assert (code, stdout, stderr) == (0, out.stdout, "")


@pytest.mark.parametrize("args,line", [
    (["--config.epoch=3"], "train.py: error: unknown field 'epoch' (did you mean 'epochs'?)"),
    (["--config.sweep.learning_rate=('a',)"],
     "train.py: error: sweep.learning_rate takes numbers, got 'a'"),
    (["--config.learning_rate=0.5"],
     "train.py: error: --config.learning_rate has no effect: the sweep sets learning_rate for "
     "every member; use --config.sweep.learning_rate=VALUE (one value or a tuple) instead"),
    (["--config.momentum=0.5"],   # the smoke config trains with Adam
     "train.py: error: --config.momentum does nothing with optimizer='adam'"),
    (["--config.sweep.b1=(0.8, 0.9)", "--config.optimizer=sgd"],
     "train.py: error: sweep.b1 does nothing with optimizer='sgd'"),
    (["--config.knn.ks=(1,)"], "train.py: error: --config.knn.ks does nothing here"),
    (["--mode", "eval", "--config.epochs=3"], "train.py: error: --config and --config.FIELD do "
                                              "nothing with --mode eval"),
    (["--split", "val"], "train.py: error: --split does nothing without --mode eval"),
    (["--process_id", "1"], "train.py: error: --num_processes and --process_id do nothing "
                            "without --coordinator host:port"),
    (["--config", "configs/default.py"], "train.py: error: --config given twice; give one "
                                         "config file"),     # the second silently won
    # A bare flag of a field that is not true/false read as "true": "takes a number, got
    # 'true'".
    (["--config.learning_rate"], "train.py: error: --config.learning_rate needs a value: "
                                 "--config.learning_rate=VALUE (given bare, a flag sets a "
                                 "true/false field only)"),
    (["--noconfig.epochs"], "train.py: error: --noconfig.epochs needs a value: "
                            "--config.epochs=VALUE"),
    # The value won over the "no": flip was turned on.
    (["--noconfig.data.flip=true"], "train.py: error: --noconfig.data.flip=true: "
                                    "--noconfig.FIELD takes no value; give "
                                    "--config.data.flip=true, or --noconfig.data.flip for "
                                    "False"),
    (["--config.sweep.seed"], "train.py: error: --config.sweep.seed needs a value"),
    (["--bogus"], "train.py: error: unknown flag --bogus; python train.py --help lists the "
                  "flags"),
    (["--workdri=x"], "train.py: error: unknown flag --workdri (did you mean --workdir?)"),
    # absl's own: "flag --num_processes=x: invalid literal for int() with base 10: 'x'"
    (["--num_processes=x"], "train.py: error: --num_processes takes an integer, got 'x'"),
    (["--mode=bogus"], "train.py: error: --mode takes one of: train, eval, features; got "
                       "'bogus'"),
    # Tracebacks from jax.distributed.initialize, exit status 1.
    (["--coordinator=127.0.0.1:1234", "--num_processes=2", "--process_id=5"],
     "train.py: error: --process_id must be in 0..1 (one of the --num_processes=2 "
     "processes), got 5"),
    (["--coordinator=127.0.0.1:1234", "--num_processes=2", "--process_id=-1"],
     "train.py: error: --process_id must be in 0..1"),
    (["--coordinator=127.0.0.1:1234", "--num_processes=0", "--process_id=0"],
     "train.py: error: --num_processes must be >= 1, got 0"),
    (["--coordinator=nonsense", "--num_processes=1", "--process_id=0"],
     "train.py: error: --coordinator takes host:port, the address of process 0 with a port "
     "in 1..65535, got 'nonsense'"),
    (["--coordinator=127.0.0.1:70000", "--num_processes=1", "--process_id=0"],
     "train.py: error: --coordinator takes host:port"),
    # --mode features trains nothing: a training override was ignored (and a swept one
    # was told to use --config.sweep.FIELD, which it ignores too).
    (["--mode", "features", "--out", "f.npz", "--config.epochs=3"],
     "train.py: error: --config.epochs does nothing with --mode features, which writes the "
     "config's features and trains nothing"),
    (["--mode", "features", "--out", "f.npz", "--config.learning_rate=0.1"],
     "train.py: error: --config.learning_rate does nothing with --mode features"),
    (["--mode", "features", "--out", "f.npz", "--config.sweep.seed=(0, 1)"],
     "train.py: error: --config.sweep.seed does nothing with --mode features"),
])
def test_bad_command_lines_are_one_line_exit_2(train_main, tmp_path, args, line):
  code, _, err = train_main(*SMOKE, *args, "--workdir", str(tmp_path / "run"))
  assert code == 2
  assert _one_line(err).startswith(line)
  assert not (tmp_path / "run").exists()


def test_an_empty_workdir_is_refused(train_main, tmp_path, monkeypatch):
  # An unset $WD in `--workdir=$WD` started a new run under runs/ each time.
  monkeypatch.chdir(tmp_path)     # where runs/ would be made
  code, _, err = train_main("--config", os.path.join(ROOT, "configs", "default.py:smoke"),
                            "--workdir=")
  assert code == 2
  assert _one_line(err) == ("train.py: error: --workdir is empty; give a folder, or leave "
                            "--workdir out for runs/<config>-<date>-<time>")
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("typo,line", [
    ("c.epohcs = 3", "unknown field 'epohcs' (did you mean 'epochs'?)"),
    ("c.data.limt = 30", "unknown field 'data.limt' (did you mean 'data.limit'?)"),
])
def test_a_config_file_that_sets_an_unknown_field_is_refused(train_main, tmp_path, typo,
                                                              line):
  # It was kept in config.json and ignored: the run trained on the default.
  (tmp_path / "typo.py").write_text(
      "from configs import default\n\n\ndef get_config():\n"
      f"  c = default.get_config('smoke')\n  {typo}\n  return c\n")
  code, _, err = train_main("--config", str(tmp_path / "typo.py"),
                            "--workdir", str(tmp_path / "run"))
  assert code == 2
  assert _one_line(err) == f"train.py: error: --config {tmp_path / 'typo.py'}: {line}"
  assert not (tmp_path / "run").exists()


def test_a_config_built_in_python_with_an_unknown_field_is_refused(tmp_path):
  c = default.get_config("smoke")
  c.learning_rat = 0.5
  with pytest.raises(config_lib.ConfigError, match=r"^unknown field 'learning_rat' \(did you mean "
                                        r"'learning_rate'\?\)$"):
    experiment.run(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_bad_command_line_in_a_process_of_its_own_is_one_line_exit_2(tmp_path):
  # The cases above run train.py's main in the test's process; this one, python train.py.
  out = _train(tmp_path, *SMOKE, "--config.epoch=3", "--workdir", str(tmp_path / "run"))
  assert out.returncode == 2
  assert _one_line(out).startswith("train.py: error: unknown field 'epoch' (did you mean "
                                   "'epochs'?)")
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,line", [
    (["--workdir", "{file}"], "train.py: error: workdir {file} is a file, not a folder"),
    (["--workdir", "{file}/run"],
     "train.py: error: workdir {file}/run lies inside {file}, which is a file"),
    (["--mode", "features", "--out", "{file}/x.npz"],
     "train.py: error: --out {file}/x.npz lies inside {file}, which is a file"),
    (["--mode", "features", "--out", "{file}/"],
     "train.py: error: --out {file}/ is a file, not a folder"),
])
def test_a_workdir_or_out_that_cannot_be_written_is_refused_before_the_data(
    train_main, tmp_path, args, line):
  file = tmp_path / "file"
  file.write_text("mine\n")
  code, stdout, err = train_main(*SMOKE, *[a.format(file=file) for a in args])
  assert code == 2
  assert _one_line(err).startswith(line.format(file=file))
  assert stdout == ""   # before loading data (or computing features) for nothing
  assert file.read_text() == "mine\n"


def test_a_folder_that_refuses_new_files_is_named(tmp_path, monkeypatch):
  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")
  monkeypatch.setattr(experiment.tempfile, "TemporaryFile", refuse)
  with pytest.raises(experiment.ConfigError, match=re.escape(
      f"workdir {tmp_path}/a/run cannot be written: no new file in {tmp_path} (Permission "
      "denied); choose another workdir")):
    experiment.check_writable(str(tmp_path / "a" / "run"), "workdir")
  assert os.listdir(tmp_path) == []


def test_a_new_sweep_axis_from_the_command_line_and_quiet_first_use(tmp_path):
  out = _train(tmp_path, *SMOKE, "--config.epochs=1", "--config.sweep.seed=(0, 1)",
               "--config.sweep.learning_rate=0.1", "--config.sweep.margin=(1, 2)",
               "--workdir", str(tmp_path / "run"))
  assert out.returncode == 0, out.stderr
  rows = list(csv.DictReader(open(tmp_path / "run" / "results.csv")))
  # loss (2, from the config) x learning rate (1, replaced) x seed (2, new) x margin (2, new),
  # softmax's margins collapsed to the config's
  assert len(rows) == 6
  assert {r["learning_rate"] for r in rows} == {"0.1"}
  assert {(r["loss"], r["seed"], r["margin"]) for r in rows} == {
      ("softmax", "0", "1.0"), ("softmax", "1", "1.0"), ("svm", "0", "1.0"),
      ("svm", "0", "2.0"), ("svm", "1", "1.0"), ("svm", "1", "2.0")}
  assert out.stdout.startswith("note: sweep.margin does nothing with loss='softmax'")
  # First use (a fresh data dir, digits prepared): nothing from tfds, no escape codes.
  assert out.stderr == ""
  for noise in ("WARNING", "absl", "Downloading", "Unknown size", "\x1b", "\r"):
    assert noise not in out.stdout, noise


# Starts the command after it with SIGINT delivered and handled by default, as a shell
# does, whatever the test process inherited or blocked (a test worker may have either).
_AS_FROM_A_SHELL = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                    "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
                    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def test_ctrl_c_says_where_and_exits_130_then_the_same_command_resumes(tmp_path):
  # Enough epochs that the signal lands while the one group trains, on a loaded machine:
  # an epoch takes about 2.5 ms, and at 200 epochs a run once ended before the signal
  # came (at 60 too, before epochs were that fast). The resumed run trains the rest.
  args = [sys.executable, "-c", _AS_FROM_A_SHELL, os.path.join(ROOT, "train.py"), *SMOKE,
          "--config.epochs=2000", "--workdir", str(tmp_path / "run")]
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env(tmp_path), cwd=ROOT)
  for line in proc.stdout:   # a pipe: the first report is printed, then one every 10 s
    if line.startswith("group 1/1  epoch 1/2000"):  # Ctrl-C then commits epoch 1 or later
      proc.send_signal(signal.SIGINT)
      break
  rest, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, f"exit status {proc.returncode}; stdout: {rest[-500:]!r}; " \
                                 f"stderr: {err[-1500:]!r}"
  lines = [l for l in err.splitlines() if l.strip()]
  assert len(lines) == 1, err
  assert re.fullmatch(r"train\.py: interrupted in group 1 at epoch \d+; run the same command "
                      r"to resume", lines[0]), lines[0]
  again = subprocess.run(args, capture_output=True, text=True, env=_env(tmp_path), cwd=ROOT,
                         timeout=300)
  assert again.returncode == 0, again.stderr
  assert "group 1/1  epoch 1/2000" not in again.stdout   # resumed, not started over
  assert "selected member" in again.stdout


def test_ctrl_c_in_features_mode_says_that_nothing_was_written(train_main, tmp_path,
                                                              monkeypatch):
  from lincv.features import export  # pylint: disable=import-outside-toplevel
  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
  monkeypatch.setattr(export, "export", interrupted)
  monkeypatch.setattr(signal, "signal", lambda *args: None)   # leave pytest's handler be
  out = tmp_path / "features.npz"
  code, _, err = train_main("--config", os.path.join(ROOT, "configs", "default.py:smoke"),
                            "--mode", "features", "--out", str(out))
  assert code == 130
  assert err == f"train.py: interrupted; nothing written to --out {out}\n"
  assert not out.exists()


def test_progress_says_where_the_run_stands():
  p = Progress(io.StringIO())
  assert p.where() == "before the first epoch"
  p({"group": 0, "num_groups": 2, "epoch": 3, "epochs": 5, "alive": 2, "members": 2,
     "best_val_accuracy": 0.5, "seconds": 1.0})
  assert p.where() == "in group 1 at epoch 4"
  p({"group": 0, "num_groups": 2, "epoch": 5, "epochs": 5, "alive": 2, "members": 2,
     "best_val_accuracy": 0.5, "seconds": 1.0})
  assert p.where() == "in group 2 at epoch 1"
  assert "\r" not in p.stream.getvalue() and "\x1b" not in p.stream.getvalue()
  resumed = Progress(io.StringIO())
  resumed.resuming = True               # a Ctrl-C before its first report
  assert resumed.where() == ("before this process's first epoch, resuming from the run's "
                             "last checkpoint")


def test_progress_says_where_a_halving_sweep_stands():
  # With halving every group trains to the rung before any goes on: after group 1's
  # epoch 2 (the rung), a Ctrl-C in group 2's first epoch said "in group 1 at epoch 3".
  p = Progress(io.StringIO())
  report = {"num_groups": 2, "epochs": 6, "alive": 2, "members": 2,
            "best_val_accuracy": 0.5, "seconds": 1.0}
  for epoch in (1, 2):
    p.starting(0, epoch)
    assert p.where() == f"in group 1 at epoch {epoch}"
    p({**report, "group": 0, "epoch": epoch})
  p.starting(1, 1)
  assert p.where() == "in group 2 at epoch 1"
  p({**report, "group": 1, "epoch": 1})
  assert p.training is None


def test_python_m_lincv_data_without_arguments_prints_usage_exit_2(tmp_path):
  out = subprocess.run([sys.executable, "-m", "lincv.data"], capture_output=True, text=True,
                       env=_env(tmp_path), cwd=ROOT, timeout=120)
  assert out.returncode == 2 and out.stdout == ""
  assert out.stderr.startswith("usage: python -m lincv.data")
  assert "error: give a dataset name (digits, cifar10" in out.stderr
  assert "Traceback" not in out.stderr
