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
from unittest import mock

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from lincv import config as config_lib
from lincv import data as data_lib
from lincv import experiment, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
  README = _f.read()
LANGUAGES = ("python", "sh", "text")
# Python snippets that are compiled but not run, by their first line, each with the reason
# it cannot run in a test. Keep it empty; an entry that matches no snippet fails.
CANNOT_RUN: dict[str, str] = {}
# Shell commands checked by rule only: they install, run the suite or set the shell.
EXEMPT = (("pip", "install"), ("python", "-m", "pytest"), ("export",))


@dataclasses.dataclass(frozen=True)
class Block:
  lang: str
  code: str
  line: int  # of the block's first code line in README.md

  def __repr__(self):
    return f"README.md:{self.line}"


def _blocks() -> list[Block]:
  return [Block(m.group(1), m.group(2), README.count("\n", 0, m.start(2)) + 1)
          for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.M | re.S)]


BLOCKS = _blocks()
PROSE = re.sub(r"^```\w*\n.*?^```$", "", README, flags=re.M | re.S)


def _commands() -> list[tuple[str, list[str]]]:
  """(where, words) of every shell command: the sh blocks' lines (comments and `\\`
  continuations taken care of) and the prose's inline `python train.py ...`."""
  found = []
  for block in BLOCKS:
    if block.lang == "sh":
      for i, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
        words = shlex.split(line, comments=True)
        if words:
          found.append((f"README.md:{block.line + i}", words))
  for span in re.findall(r"`([^`]*python train\.py[^`]*)`", PROSE):
    found.append(("README.md prose", shlex.split(span)))
  return [(where, _without_env(words)) for where, words in found]


def _without_env(words: list[str]) -> list[str]:
  """The command without its leading VAR=value settings."""
  while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
    words = words[1:]
  return words


COMMANDS = _commands()


def _image_folder(root, classes=("cat", "dog", "ship"), per_class=6, size=8):
  """root/{train,test}/<class>/*.png, as an image folder dataset holds it."""
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for k, name in enumerate(classes):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i in range(per_class):
        pixels = rng.integers(0, 60, (size, size, 3)) + 60 * k
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")


def _png(feature, pixels):
  """PNG bytes via PIL; tfds's own Image encoder needs TensorFlow."""
  del feature
  buf = io.BytesIO()
  Image.fromarray(np.asarray(pixels)).save(buf, format="PNG")
  return buf.getvalue()


def _prepare_cifar10(data_dir, tmp):
  """A tiny CIFAR-10 prepared as ArrayRecord in `data_dir`, as `tfds build` leaves it."""
  rng = np.random.default_rng(0)

  class MadeUp(tfds.builder_cls("cifar10"), skip_registration=True):
    """The catalog builder, with made-up examples in place of the download."""

    name = "cifar10"
    code_path = None

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(split, n) for split, n in (("train", 20), ("test", 10))}

    def _examples(self, split, n):
      for i in range(n):
        yield i, {"id": f"{split}_{i}", "label": i % 10,
                  "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}

  with mock.patch.object(tfds.features.Image, "encode_example", _png):
    MadeUp(data_dir=data_dir, file_format="array_record").download_and_prepare(
        download_dir=tmp, download_config=tfds.download.DownloadConfig(try_download_gcs=False))


@dataclasses.dataclass(frozen=True)
class Home:
  path: pathlib.Path
  run_name: str  # of the run under runs/
  stdout: str  # what the run printed


@pytest.fixture(scope="module")
def home(tmp_path_factory):
  """A folder as a user has it after `python train.py --config configs/default.py:smoke`
  without --workdir: configs/, the run under runs/ (and a copy at runs/x), what it printed
  (`stdout`), an image folder at path/to/cifar10, and the data in tfds/ (digits, and
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
  _image_folder(home / "path" / "to" / "cifar10")
  _prepare_cifar10(home / "tfds", home / "downloads")
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


@pytest.fixture(scope="module")
def train():
  """train.py as a module (its flags are defined once per process)."""
  if "train" not in sys.modules:
    spec = importlib.util.spec_from_file_location("train", os.path.join(ROOT, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["train"] = module
  return sys.modules["train"]


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


def _expected_prints(code: str) -> list[re.Pattern]:
  return [re.compile(".*".join(map(re.escape, text.strip().split("..."))))
          for text in re.findall(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.M)]


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"], ids=repr)
def test_python_block_runs(block, namespace, at_home, capsys):
  code = compile("\n" * (block.line - 1) + block.code, "README.md", "exec")
  if block.code.splitlines()[0] in CANNOT_RUN:
    return  # compiled above; CANNOT_RUN says why it does not run
  capsys.readouterr()
  exec(code, namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  for pattern in _expected_prints(block.code):
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


def _named_configs() -> set[str]:
  """Every `X.py[:variant]` the prose names that is not a file at the repo's root, and the
  `:variant`s a table row lists next to its config."""
  names = set()
  for line in PROSE.splitlines():
    found = [(f, v) for f, v in re.findall(r"`(?:configs/)?(\w+\.py)(:\w+)?`", line)
             if not os.path.isfile(os.path.join(ROOT, f))]
    names.update(f + v for f, v in found)
    if line.startswith("|") and len(found) == 1:
      names.update(found[0][0] + v for v in re.findall(r"`(:\w+)`", line))
  return names


def test_every_config_the_readme_names_loads_and_checks():
  names = _named_configs()
  assert {"default.py", "cifar10_kmeans.py:4000_flip", "digits_baselines.py:knn"} <= names
  for name in sorted(names):
    config = config_lib.load(os.path.join(ROOT, "configs", name))
    assert experiment.check(config), name


def test_every_repo_path_the_readme_names_exists():
  paths = set(re.findall(r"`((?:lincv|bench|configs|tests)/[\w./]*\w)`", PROSE))
  assert "lincv/config.py" in paths
  assert [p for p in sorted(paths) if not os.path.exists(os.path.join(ROOT, p))] == []


# ------------------------------------------------------------------------- run directory


def _run_table() -> list[list[str]]:
  start = README.index("| file | what |")
  rows = README[start:README.index("\n\n", start)].splitlines()[2:]
  return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _pattern(name: str) -> re.Pattern:
  return re.compile(re.sub(r"<\w+>", r"\\d+", re.escape(name)))


def test_the_run_directory_table_lists_what_a_run_writes(home):
  listed = []
  for first, what in _run_table():
    (name,) = re.findall(r"`([^`]+)`", first)
    if name.endswith("/"):
      listed += [name + f for f in re.findall(r"`([^`]+\.\w+)`", what)]
    else:
      listed.append(name)
  run = home.path / "runs" / home.run_name
  written = sorted(os.path.relpath(os.path.join(d, f), run)
                   for d, _, files in os.walk(run) for f in files)
  patterns = [_pattern(name) for name in listed]
  assert [n for n, p in zip(listed, patterns) if not any(p.fullmatch(w) for w in written)] == []
  assert [w for w in written if not any(p.fullmatch(w) for p in patterns)] == []


def test_the_summary_holds_the_keys_the_table_names(home):
  (what,) = [what for first, what in _run_table() if first == "`summary.json`"]
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
