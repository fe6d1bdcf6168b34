"""JAX's persistent compilation cache for lincv's runs: a program compiled once is reused.

Most of a small run's time is XLA compiling the sweep's programs (the population's
epoch, its evaluation, the feature programs). With the cache on, a later process that
builds the same program with the same shapes, dtypes, devices and versions reads the
compiled executable from disk instead of compiling it again.

`enable()` turns it on; `lincv.train` (`experiment.run`), `train.py` and the benchmarks
call it before they compile. The directory is, in order:

  * `LINCV_COMPILATION_CACHE`: a path, or one of "0", "off", "false", "no", "" for no
    cache at all;
  * a directory JAX was already given (`jax_compilation_cache_dir`, or its environment
    variable `JAX_COMPILATION_CACHE_DIR`): the user's own, left as it is;
  * `$XDG_CACHE_HOME/lincv/jax`, else `~/.cache/lincv/jax`.

Every program is kept, however quickly it compiled (JAX's default keeps only those
that took a second or more, which would leave out most of a small run's). The directory
is not bounded: JAX's bounded cache scans every entry on each write, which made the test
suite, with its thousands of programs, half again slower. JAX keys an entry by the
program and everything that changes its executable, so a stale entry is never used;
the cache is a cache: deleting the directory is always safe.
"""

import os
import tempfile
import warnings

ENV = "LINCV_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no", "")


def directory() -> str | None:
  """Where the cache lives by `ENV` and the user's cache directory; None when it is off."""
  value = os.environ.get(ENV)
  if value is not None:
    return None if value.strip().lower() in OFF else os.path.expanduser(value)
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "lincv", "jax")


def enable() -> str | None:
  """Turns the cache on for this process; returns its directory (None: off).

  A directory JAX already has (set by the user, or by an earlier call) is kept. One that
  cannot be created or written is one warning, and the run goes on compiling as without
  a cache.
  """
  import jax  # pylint: disable=import-outside-toplevel
  value = os.environ.get(ENV)
  if value is not None and value.strip().lower() in OFF:
    return None
  current = jax.config.jax_compilation_cache_dir
  if current and value is None:
    return current
  path = directory()
  if current == path:
    return path
  try:
    os.makedirs(path, exist_ok=True)
    tempfile.TemporaryFile(dir=path).close()   # else JAX warns at every program it compiles
  except OSError as e:
    why = "a file, not a directory" if os.path.isfile(path) else e.strerror
    warnings.warn(f"lincv: no compilation cache ({why}: {path}); set {ENV} to a "
                  "writable directory, or to 'off'", stacklevel=2)
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  if current:   # the cache was opened at the old directory: open it at the new one
    from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=import-outside-toplevel
    compilation_cache.reset_cache()
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return path
