"""Progress of a sweep: a bar per group on a terminal, plain log lines otherwise.

Escape codes (the carriage return that redraws the bar) go only to a terminal. A file or
a pipe gets plain lines at a fixed cadence: the first report, then at most one line every
`every` seconds, and always a group's last epoch (finished, or every member stopped).
"""

import sys
import time

from lincv import metrics

EVERY = 10.0  # seconds between plain progress lines, by default


class Progress:
  """Callable given to `lincv.sweep.run`; writes to `stream` (default stderr).

  Args:
    stream: where the lines go; a terminal gets a bar redrawn every epoch.
    width: the bar's width in characters.
    every: seconds between plain lines when `stream` is not a terminal; 0 writes a line
      every epoch.
    clock: seconds as a float, e.g. `time.monotonic` (injectable for tests).
  """

  def __init__(self, stream=None, width: int = 24, *, every: float = EVERY,
               clock=time.monotonic):
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.width = width
    self.every = float(every)
    self.clock = clock
    self.last = None          # the last report of `__call__`, None before the first epoch
    self.resuming = False     # set by the run: it resumes from a checkpoint
    self.training = None      # (group, epoch) the runner started and has not reported yet
    self._open_line = False   # a bar is drawn and its line not ended yet
    self._printed = None      # clock() when the last plain progress line was written
    self._start = time.perf_counter()

  def starting(self, group: int, epoch: int) -> None:
    """The runner starts training `epoch` (counted from 1) of `group` (from 0): where a
    Ctrl-C lands until that epoch's report (`where`). With halving the groups take turns
    (every group to the rung, then on), which the reports alone do not tell."""
    self.training = (group, epoch)

  def __call__(self, p: dict) -> None:
    self.last = dict(p)
    if self.training == (p["group"], p["epoch"]):
      self.training = None
    ends = p["epoch"] == p["epochs"] or p["alive"] == 0
    if self.tty:
      done = int(self.width * p["epoch"] / p["epochs"])
      bar = "#" * done + "." * (self.width - done)
      self.stream.write(f"\r[{bar}] {line(p)}")
      self._open_line = not ends
      if ends:
        self.stream.write("\n")
    else:
      now = self.clock()
      if not (ends or self._printed is None or now - self._printed >= self.every):
        return
      self._printed = now
      self.stream.write(line(p) + "\n")
    self.stream.flush()

  def log(self, text: str) -> None:
    """A plain line, e.g. a phase of the run, after the seconds elapsed since the start."""
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
    """Where the run stands, from the last report (printed or not): "in group G at epoch E"
    (E is the epoch being trained), or "before the first epoch" (of this process, on a
    resumed run)."""
    if self.training is not None:
      return f"in group {self.training[0] + 1} at epoch {self.training[1]}"
    p = self.last
    if p is None:
      return ("before this process's first epoch, resuming from the run's last checkpoint"
              if self.resuming else "before the first epoch")
    if p["epoch"] < p["epochs"] and p["alive"] > 0:
      return f"in group {p['group'] + 1} at epoch {p['epoch'] + 1}"
    if p["group"] + 1 < p["num_groups"]:
      return f"in group {p['group'] + 2} at epoch 1"
    return "after the last epoch, while writing the results"


def line(p: dict) -> str:
  """One report as text: group, epoch, members still training, best validation accuracy
  and the group's training time so far (every process's, on a resumed run)."""
  best = p["best_val_accuracy"]    # below 0: no member kept an epoch (all diverged)
  return (f"group {p['group'] + 1}/{p['num_groups']}  epoch {p['epoch']}/{p['epochs']}  "
          f"alive {p['alive']}/{p['members']}  best val "
          f"{metrics.accuracy_text(best) if best >= 0 else 'none'}  train {p['seconds']:.1f}s")
