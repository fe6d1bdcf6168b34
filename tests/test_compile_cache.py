"""compile_cache: a second process reads the programs the first compiled; off when asked."""

import json
import os
import subprocess
import sys

import jax
import pytest

from lincv import compile_cache
from conftest import ROOT

# A smoke run in a fresh process, counting JAX's persistent-cache events.
RUN = """
import json, sys
import jax
from jax import monitoring
counts = {"requests": 0, "hits": 0}
names = {"/jax/compilation_cache/compile_requests_use_cache": "requests",
         "/jax/compilation_cache/cache_hits": "hits"}
def count(name, **kwargs):
  if name in names:
    counts[names[name]] += 1
monitoring.register_event_listener(count)
import lincv
lincv.train(lincv.load_config("configs/default.py:smoke"), sys.argv[1])
counts["dir"] = jax.config.jax_compilation_cache_dir
print(json.dumps(counts))
"""


def _run(workdir, cache):
  env = {**os.environ, "LINCV_COMPILATION_CACHE": str(cache)}
  out = subprocess.run([sys.executable, "-c", RUN, str(workdir)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(cache):
  return sorted(f for f in os.listdir(cache) if f.endswith("-cache"))


def test_a_second_process_finds_every_program_the_first_compiled(tmp_path):
  cache = tmp_path / "cache"
  first = _run(tmp_path / "a", cache)
  assert first["dir"] == str(cache)
  written = _entries(cache)
  # Every program compiled is kept (a program built twice in the run is read back the
  # second time), and the next process compiles none of them.
  assert first["requests"] > 0 and len(written) == first["requests"] - first["hits"]
  second = _run(tmp_path / "b", cache)
  assert second["hits"] == second["requests"] == first["requests"]
  assert _entries(cache) == written


def test_off_means_no_cache_at_all(tmp_path):
  off = _run(tmp_path / "a", "off")
  assert off["dir"] is None and off["hits"] == 0
  assert not os.path.exists(os.path.join(ROOT, "off"))


def test_the_directory_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compile_cache.directory() == str(tmp_path / "lincv" / "jax")
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert compile_cache.directory() == str(tmp_path / "home" / ".cache" / "lincv" / "jax")
  for value in ("0", "off", "OFF", "false", "no", ""):
    monkeypatch.setenv(compile_cache.ENV, value)
    assert compile_cache.directory() is None
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "mine"))
  assert compile_cache.directory() == str(tmp_path / "mine")


def test_a_directory_that_cannot_be_written_is_one_warning_and_no_cache(monkeypatch, tmp_path):
  before = jax.config.jax_compilation_cache_dir
  file = tmp_path / "file"
  file.write_text("")
  monkeypatch.setenv(compile_cache.ENV, str(file))
  with pytest.warns(UserWarning, match=r"no compilation cache \(a file, not a directory: "):
    assert compile_cache.enable() is None
  # An existing directory this process cannot write in (another user's): without the
  # check, JAX would take it and warn once for every program it compiles.
  def refuse(*args, **kwargs):
    raise PermissionError(13, "Permission denied")
  monkeypatch.setattr(compile_cache.tempfile, "TemporaryFile", refuse)
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path))
  with pytest.warns(UserWarning, match=r"no compilation cache \(Permission denied: "):
    assert compile_cache.enable() is None
  assert jax.config.jax_compilation_cache_dir == before
