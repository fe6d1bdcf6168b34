"""Progress of a sweep: a bar per group on a terminal, plain log lines otherwise."""

import sys
import time


class Progress:
  """Callable given to `lincv.sweep.run`; writes to `stream` (default stderr)."""

  def __init__(self, stream=None, width: int = 24):
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.width = width
    self._group = None
    self._start = time.perf_counter()

  def __call__(self, p: dict) -> None:
    text = (f"group {p['group'] + 1}/{p['num_groups']}  epoch {p['epoch']}/{p['epochs']}  "
            f"alive {p['alive']}/{p['members']}  best val {p['best_val_accuracy']:.4f}  "
            f"{p['seconds']:.1f}s")
    if self.tty:
      done = int(self.width * p["epoch"] / p["epochs"])
      bar = "#" * done + "." * (self.width - done)
      self.stream.write(f"\r[{bar}] {text}")
      if p["epoch"] == p["epochs"] or p["alive"] == 0:
        self.stream.write("\n")
    else:
      self.stream.write(text + "\n")
    self.stream.flush()

  def log(self, text: str) -> None:
    """A plain line, e.g. a phase of the run."""
    elapsed = time.perf_counter() - self._start
    self.stream.write(f"[{elapsed:7.1f}s] {text}\n")
    self.stream.flush()
