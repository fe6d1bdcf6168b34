"""Progress of a sweep: a bar per group on a terminal, plain log lines otherwise.

Escape codes (the carriage return that redraws the bar) go only to a terminal; a file or
a pipe gets one plain line per epoch and group.
"""

import sys
import time


class Progress:
  """Callable given to `lincv.sweep.run`; writes to `stream` (default stderr)."""

  def __init__(self, stream=None, width: int = 24):
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.width = width
    self.last = None          # the last report of `__call__`, None before the first epoch
    self._open_line = False   # a bar is drawn and its line not ended yet
    self._start = time.perf_counter()

  def __call__(self, p: dict) -> None:
    self.last = dict(p)
    text = (f"group {p['group'] + 1}/{p['num_groups']}  epoch {p['epoch']}/{p['epochs']}  "
            f"alive {p['alive']}/{p['members']}  best val {p['best_val_accuracy']:.4f}  "
            f"{p['seconds']:.1f}s")
    if self.tty:
      done = int(self.width * p["epoch"] / p["epochs"])
      bar = "#" * done + "." * (self.width - done)
      self.stream.write(f"\r[{bar}] {text}")
      self._open_line = not (p["epoch"] == p["epochs"] or p["alive"] == 0)
      if not self._open_line:
        self.stream.write("\n")
    else:
      self.stream.write(text + "\n")
    self.stream.flush()

  def log(self, text: str) -> None:
    """A plain line, e.g. a phase of the run."""
    self.end_line()
    elapsed = time.perf_counter() - self._start
    self.stream.write(f"[{elapsed:7.1f}s] {text}\n")
    self.stream.flush()

  def end_line(self) -> None:
    """Ends a bar's line, so that what is written next starts on a line of its own."""
    if self._open_line:
      self.stream.write("\n")
      self.stream.flush()
      self._open_line = False

  def where(self) -> str:
    """Where the run stands, from the last report: "in group G at epoch E" (E is the epoch
    being trained), or "before the first epoch"."""
    p = self.last
    if p is None:
      return "before the first epoch"
    if p["epoch"] < p["epochs"] and p["alive"] > 0:
      return f"in group {p['group'] + 1} at epoch {p['epoch'] + 1}"
    if p["group"] + 1 < p["num_groups"]:
      return f"in group {p['group'] + 2} at epoch 1"
    return "after the last epoch, while writing the results"
