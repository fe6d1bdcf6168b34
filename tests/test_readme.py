"""Every claim of README.md that a program can check, checked.

The README's convention: code blocks are fenced and name their language.

  ```python  runs: the blocks of the README run in order in one namespace (as a doctest
             would), in a folder `home` holding a finished smoke run at runs/x; a
             `print(...)  # TEXT` line must print TEXT (`...` matches anything).
  ```sh      commands: each `python train.py ...` is parsed by train.py's own parser and
             its config checked (`--mode eval` evaluates runs/x); `python -m MODULE ...`
             is parsed by MODULE's argument parser; nothing trains.
  ```text    output, compared with what the smoke run printed.

Names a snippet takes as given, as the README's prose does: `c` (a config being written,
as in configs/*.py: `lincv.config.base()`), `config` (configs/default.py:smoke, loaded),
`x_tr, y_tr, x_va, y_va` (the digits, prepared). A snippet that names `c` or `config`
must leave it a config that passes `experiment.check`.
"""

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from _images import write_folder
from _readme import (BLOCKS, COMMANDS, PROSE, README, ROOT, expected_prints, file_pattern,
                     digit_files, named_configs, prepare_cifar10, run_table)
from lincv import config as config_lib
from lincv import data as data_lib
from lincv import experiment, sweep

LANGUAGES = ("python", "sh", "text")
# Python snippets that are compiled but not run, by their first line, each with the reason
# it cannot run in a test. Keep it empty; an entry that matches no snippet fails.
CANNOT_RUN: dict[str, str] = {}
# Shell commands checked by rule only: they install, run the suite or set the shell.
EXEMPT = (("pip", "install"), ("python", "-m", "pytest"), ("export",))


@dataclasses.dataclass(frozen=True)
class Home:
  path: pathlib.Path
  run_name: str  # of the run under runs/
  stdout: str  # what the run printed


@pytest.fixture(scope="module")
def home(tmp_path_factory):
  """A folder as a user has it after `python train.py --config configs/default.py:smoke`
  without --workdir: configs/, the run under runs/ (and a copy at runs/x), what it printed
  (`stdout`), an image folder at path/to/cifar10, four digit images in path/to/digits, and the data in tfds/ (digits, and
  a made-up CIFAR-10 prepared from the catalog)."""
  home = tmp_path_factory.mktemp("home")
  shutil.copytree(os.path.join(ROOT, "configs"), home / "configs")
  env = dict(os.environ, TFDS_DATA_DIR=str(home / "tfds"), XLA_FLAGS="")
  out = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"),
                        "--config", "configs/default.py:smoke"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=home)
  assert out.returncode == 0, out.stderr
  (run,) = os.listdir(home / "runs")
  shutil.copytree(home / "runs" / run, home / "runs" / "x")
  write_folder(home / "path" / "to" / "cifar10", train=6, test=6)
  digit_files(home / "path" / "to" / "digits", home / "tfds", 4)
  prepare_cifar10(home / "tfds", home / "downloads")
  return Home(home, run, out.stdout)


@pytest.fixture
def at_home(home, offline_data, monkeypatch):
  """The current directory is `home`, its data the data; the network is off."""
  del offline_data
  monkeypatch.chdir(home.path)
  monkeypatch.setenv("TFDS_DATA_DIR", str(home.path / "tfds"))
  return home


@pytest.fixture(scope="module")
def namespace(home):
  """The one namespace the README's python blocks run in, with the names they take as given."""
  c = config_lib.base()
  c.lock()
  config = config_lib.load(os.path.join(ROOT, "configs", "default.py:smoke"))
  ds = data_lib.load("digits", data_dir=str(home.path / "tfds"))
  d = data_lib.prepare(ds, val_fraction=config.data.val_fraction, seed=0)
  return {"c": c, "config": config, "x_tr": d.x_train, "y_tr": d.y_train, "x_va": d.x_val,
          "y_va": d.y_val}


# ------------------------------------------------------------------------------ convention


def test_every_code_block_is_fenced_and_names_a_known_language():
  assert README.count("\n```") % 2 == 0
  assert [b for b in BLOCKS if b.lang not in LANGUAGES] == []
  lines = PROSE.splitlines()
  indented = [line for before, line in zip([""] + lines, lines)
              if line.startswith("    ") and not before.strip()]
  assert indented == [], "an indented code block: fence it as ```python, ```sh or ```text"
  assert {b.lang for b in BLOCKS} == set(LANGUAGES)


def test_the_allow_list_names_only_snippets_of_the_readme():
  firsts = {b.code.splitlines()[0] for b in BLOCKS if b.lang == "python"}
  assert set(CANNOT_RUN) <= firsts


# ------------------------------------------------------------------------- python blocks


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"], ids=repr)
def test_python_block_runs(block, namespace, at_home, capsys):
  code = compile("\n" * (block.line - 1) + block.code, "README.md", "exec")
  if block.code.splitlines()[0] in CANNOT_RUN:
    return  # compiled above; CANNOT_RUN says why it does not run
  capsys.readouterr()
  exec(code, namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  for pattern in expected_prints(block.code):
    assert any(pattern.fullmatch(line) for line in printed), (pattern.pattern, printed)
  for name in ("c", "config"):
    if re.search(rf"\b{name}\b", block.code):
      experiment.check(namespace[name])


# --------------------------------------------------------------------------- shell blocks


def _fail_on_exit(fn, *args):
  """fn(*args); a command line's error (SystemExit 2) becomes the test's failure."""
  stderr = io.StringIO()
  try:
    with contextlib.redirect_stderr(stderr):
      return fn(*args)
  except SystemExit as e:
    pytest.fail(f"exit status {e.code}: {stderr.getvalue().strip()}")


def _check_train(train, args):
  """train.py's parser and config checks on `args`; --mode eval evaluates the run."""
  # pylint: disable=protected-access
  if any(a in train._HELP for a in args):
    with pytest.raises(SystemExit) as e:
      train.main(["train.py", *args])
    assert e.value.code == 0
    return
  train.FLAGS.unparse_flags()
  spec, overrides = _fail_on_exit(train._parse, ["train.py", *args])
  if train.FLAGS.mode == "eval":
    assert spec is None and not overrides
    workdir, split = train.FLAGS.workdir, train.FLAGS.split
    out = experiment.evaluate(workdir, split, stream=io.StringIO())
    with open(os.path.join(workdir, "summary.json"), encoding="utf-8") as f:
      best = json.load(f)["best"]
    if split != "train":  # the run records its val and test accuracy
      assert out["accuracy"] == pytest.approx(best[f"{split}_accuracy"], abs=1e-6)
  else:
    _fail_on_exit(train._load, spec, overrides)


class _Parsed(Exception):
  pass


def _check_module(module, args, monkeypatch):
  """MODULE's main parses `args` with argparse; it stops there."""
  monkeypatch.syspath_prepend(ROOT)
  spec = importlib.util.find_spec(module)
  assert spec is not None, f"no module {module}"
  if spec.submodule_search_locations:
    module += ".__main__"
  main = importlib.import_module(module).main
  parse = argparse.ArgumentParser.parse_args

  def parse_then_stop(self, *a, **kw):
    raise _Parsed(parse(self, *a, **kw))

  monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
  with pytest.raises(_Parsed):
    _fail_on_exit(main, args)


@pytest.mark.parametrize("where,words", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_shell_command_parses_and_its_config_checks(where, words, train, at_home, monkeypatch):
  del where
  if any(tuple(words[:len(rule)]) == rule for rule in EXEMPT):
    return  # by rule: see EXEMPT
  if words[:2] == ["python", "train.py"]:
    _check_train(train, words[2:])
  elif words[:2] == ["python", "-m"]:
    _check_module(words[2], words[3:], monkeypatch)
  else:
    pytest.fail(f"a command this test does not know: {shlex.join(words)}")


def test_every_command_kind_is_seen():
  kinds = {tuple(w[:2]) for _, w in COMMANDS}
  assert {("python", "train.py"), ("python", "-m"), ("pip", "install")} <= kinds
  assert any("--mode" in w for _, w in COMMANDS) and any("--help" in w for _, w in COMMANDS)


# ------------------------------------------------------------------ configs and repo paths


def test_every_config_the_readme_names_loads_and_checks():
  names = named_configs()
  assert {"default.py", "cifar10_kmeans.py:4000_flip", "digits_baselines.py:knn"} <= names
  for name in sorted(names):
    config = config_lib.load(os.path.join(ROOT, "configs", name))
    if not config.data.name:    # a linear probe: it reads --config.data.features
      config.data.features = "feats.npz"
    assert experiment.check(config), name


def test_every_repo_path_the_readme_names_exists():
  paths = set(re.findall(r"`((?:lincv|bench|configs|tests)/[\w./]*\w)`", PROSE))
  assert "lincv/config.py" in paths
  assert [p for p in sorted(paths) if not os.path.exists(os.path.join(ROOT, p))] == []


# ------------------------------------------------------------------------- run directory


def test_the_run_directory_table_lists_what_a_run_writes(home):
  listed = []
  for first, what in run_table():
    (name,) = re.findall(r"`([^`]+)`", first)
    if name.endswith("/"):
      listed += [name + f for f in re.findall(r"`([^`]+\.\w+)`", what)]
    else:
      listed.append(name)
  run = home.path / "runs" / home.run_name
  written = sorted(os.path.relpath(os.path.join(d, f), run)
                   for d, _, files in os.walk(run) for f in files)
  patterns = [file_pattern(name) for name in listed]
  assert [n for n, p in zip(listed, patterns) if not any(p.fullmatch(w) for w in written)] == []
  assert [w for w in written if not any(p.fullmatch(w) for p in patterns)] == []


def test_the_summary_holds_the_keys_the_table_names(home):
  (what,) = [what for first, what in run_table() if first == "`summary.json`"]
  with open(home.path / "runs" / home.run_name / "summary.json", encoding="utf-8") as f:
    summary = json.load(f)
  keys = re.findall(r"`([\w.]+)`", what)
  assert "best.test_accuracy" in keys
  for key in keys:
    node = summary
    for part in key.split("."):
      assert part in node, key
      node = node[part]


def test_a_run_without_workdir_is_named_as_the_readme_says(home, train):
  assert re.fullmatch(r"default-smoke-\d{8}-\d{6}", home.run_name)
  when = time.strptime("20260102-030405", "%Y%m%d-%H%M%S")
  claimed = {n.replace("<date>-<time>", "20260102-030405")
             for n in re.findall(r"`(runs/[\w.-]+-<date>-<time>)/`", PROSE)}
  assert claimed == {train.default_workdir(spec, when)
                     for spec in (train.DEFAULT_CONFIG, "configs/default.py:smoke")}


def test_the_printed_summary_looks_as_the_readme_shows(home):
  (text,) = [b.code.splitlines() for b in BLOCKS if b.lang == "text"]
  printed = home.stdout.splitlines()
  assert text[0] in printed
  header = printed[printed.index(text[0]) + 1].split()
  assert header[0] == "member" and header[-3:] == text[1].split()[-3:]
  assert set(header) <= set(text[1].split())  # the smoke run sweeps fewer fields
  shape = re.sub(r"\d+(\.\d+)?", r"\\d+(\\.\\d+)?", re.escape(text[-1]))
  assert any(re.fullmatch(shape, line) for line in printed), text[-1]


# ---------------------------------------------------------------------- quoted messages


def _refusal(train, args) -> str:
  """The one line train.py's parser and checks write on stderr for `args` (exit status 2)."""
  # pylint: disable=protected-access
  train.FLAGS.unparse_flags()
  stderr = io.StringIO()
  with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(stderr):
    train._load(*train._parse(["train.py", *args]))
  assert e.value.code == 2
  (line,) = stderr.getvalue().splitlines()
  return line


@pytest.mark.parametrize("args,quote", [
    (["--config.epoch=10"], "train.py: error: unknown field 'epoch' (did you mean 'epochs'?)"),
    (["--config.sweep.learning_rate=a"], "sweep.learning_rate takes numbers, got 'a'"),
    (["--config.sweep.loss=softmax", "--config.sweep.margin=(1, 2)"],
     "sweep.margin does nothing with loss='softmax' (it is the SVM margin); remove it, or use "
     "loss svm or squared_svm"),
    (["--config.learning_rate=0.5"], "--config.learning_rate=0.5"),
    (["--config.momentum=0.5"], "--config.momentum=0.5"),
])
def test_a_refusal_the_readme_quotes_is_what_train_py_says(args, quote, train, at_home):
  assert quote in " ".join(PROSE.split())
  line = _refusal(train, args)
  assert line.startswith("train.py: error: ") and quote.split("=")[0] in line


def test_the_note_the_readme_quotes_is_what_train_py_prints(train, at_home):
  # pylint: disable=protected-access
  train.FLAGS.unparse_flags()
  spec, overrides = train._parse(
      ["train.py", "--config.sweep={'loss': ('softmax', 'svm'), 'margin': (1.0, 2.0)}"])
  _, config = train._load(spec, overrides)
  (note,) = sweep.notes(config)
  assert f"`note: {note}`" in " ".join(PROSE.split())
