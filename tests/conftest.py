"""Test-wide settings.

The suite runs what users run: float32 (JAX's default). A test that needs float64 asks
for the `x64` fixture (or enters `jax.enable_x64(True)` itself); silent broadcasting is an
error everywhere.
"""

import importlib.util
import os
import socket
import sys

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent compilation cache for this test process and the processes its tests
  start, not the user's: users run with the cache on, so do the tests. Each xdist worker
  has its own (JAX's unbounded cache does not lock its files against another writer). A
  cache set from outside (LINCV_COMPILATION_CACHE) is kept."""
  if "LINCV_COMPILATION_CACHE" not in os.environ:
    os.environ["LINCV_COMPILATION_CACHE"] = str(tmp_path_factory.getbasetemp() / "jax-cache")
  yield os.environ["LINCV_COMPILATION_CACHE"]


@pytest.fixture
def x64():
  """64-bit JAX inside this test only (arrays created without a dtype are float64)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def compiled():
  """The names of the programs compiled (or read from the compilation cache) while the
  test runs, in order: `jit(<function>)` for a jitted function, the primitive's name for
  an operation run op by op."""
  from jax import monitoring  # pylint: disable=import-outside-toplevel
  names = []

  def record(event, seconds, **kwargs):
    del seconds
    if event.endswith("backend_compile_duration"):
      names.append(kwargs.get("fun_name", "?"))
  monitoring.register_event_duration_secs_listener(record)
  try:
    yield names
  finally:
    monitoring.unregister_event_duration_listener(record)


@pytest.fixture
def offline_data(tmp_path, monkeypatch):
  """A fresh TFDS_DATA_DIR under tmp_path, and any network connection fails the test."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_tfds"))

  def no_network(*args, **kwargs):
    raise AssertionError(f"a data test tried to reach the network: {args}")

  monkeypatch.setattr(socket.socket, "connect", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
  """A tiny image folder root/{train,test}/{plane,car,bird}/*.png of 32x32 RGB images
  that colour and stripe orientation tell apart (40 train and 12 test per class)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel

  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:32, :32]
  stripes = [(xx // 4) % 2, (yy // 4) % 2, ((xx + yy) // 4) % 2]  # per class: an orientation
  for split, n in (("train", 40), ("test", 12)):
    for k, name in enumerate(("plane", "car", "bird")):
      (root / split / name).mkdir(parents=True)
      for i in range(n):
        img = rng.integers(0, 60, (32, 32, 3))
        img[..., k] += 120 + 60 * stripes[k]                        # and a dominant colour
        Image.fromarray(img.astype(np.uint8)).save(root / split / name / f"{i}.png")
  return root


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def train():
  """train.py as a module (its flags are defined once per process)."""
  if "train" not in sys.modules:
    spec = importlib.util.spec_from_file_location("train", os.path.join(ROOT, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["train"] = module
  return sys.modules["train"]


@pytest.fixture
def train_main(train, capsys, monkeypatch, tmp_path):
  """train.py's `main` in this process, as `python train.py ARGS` from the repository root
  runs it (TFDS_DATA_DIR under tmp_path): ARGS -> (exit status, stdout, stderr). A process
  of its own costs seconds of imports; the tests that need one start it themselves."""
  monkeypatch.chdir(ROOT)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))

  def run(*args):
    train.FLAGS.unparse_flags()
    try:
      train.main(["train.py", *args])
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else int(e.code is not None)
    out = capsys.readouterr()
    return code, out.out, out.err
  return run
