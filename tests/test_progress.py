"""Tests for lincv.progress: plain lines at a fixed cadence off a terminal, a bar on one,
labelled times, and `where` from the last report whatever was printed."""

import io

from lincv.progress import Progress


class _Clock:
  """A clock the test moves by hand."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class _Terminal(io.StringIO):

  def isatty(self):
    return True


def _report(group, epoch, epochs=10, alive=4, num_groups=2, seconds=1.0):
  return {"group": group, "num_groups": num_groups, "epoch": epoch, "epochs": epochs,
          "alive": alive, "members": 4, "best_val_accuracy": 0.5, "seconds": seconds}


def _epochs(stream):
  return [tuple(l.split()[1:4:2]) for l in stream.getvalue().splitlines()]


def test_off_a_terminal_lines_come_at_the_cadence_and_at_each_groups_last_epoch():
  clock, out = _Clock(), io.StringIO()
  p = Progress(out, every=10.0, clock=clock)
  for g in range(2):
    for e in range(1, 11):
      clock.now += 3.0          # 3 s an epoch: a line at most every 10 s
      p(_report(g, e))
  # group 1 at t=3 (the first report), 15 (epoch 5), 27 (epoch 9), 30 (its last epoch);
  # group 2 at t=42 (epoch 4), 54 (epoch 8), 60 (its last epoch)
  assert _epochs(out) == [("1/2", "1/10"), ("1/2", "5/10"), ("1/2", "9/10"), ("1/2", "10/10"),
                          ("2/2", "4/10"), ("2/2", "8/10"), ("2/2", "10/10")]
  assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_group_whose_members_all_stop_early_gets_its_last_line():
  clock, out = _Clock(), io.StringIO()
  p = Progress(out, every=10.0, clock=clock)
  p(_report(0, 1))
  clock.now += 1.0
  p(_report(0, 2, alive=0))
  assert _epochs(out) == [("1/2", "1/10"), ("1/2", "2/10")]


def test_every_zero_writes_a_line_per_epoch():
  out = io.StringIO()
  p = Progress(out, every=0, clock=_Clock())
  for e in range(1, 4):
    p(_report(0, e, epochs=3, num_groups=1))
  assert _epochs(out) == [("1/1", "1/3"), ("1/1", "2/3"), ("1/1", "3/3")]


def test_the_training_time_is_labelled():
  out = io.StringIO()
  Progress(out)(_report(0, 1, seconds=12.345))
  assert out.getvalue().rstrip().endswith("best val 0.5000  train 12.3s")


def test_on_a_terminal_the_bar_is_redrawn_every_epoch():
  out = _Terminal()
  p = Progress(out, every=10.0, clock=_Clock())
  for e in range(1, 4):
    p(_report(0, e, epochs=3, num_groups=1))
  text = out.getvalue()
  assert text.count("\r[") == 3 and text.endswith("train 1.0s\n") and text.count("\n") == 1


def test_where_reads_the_last_report_not_the_last_line():
  clock, out = _Clock(), io.StringIO()
  p = Progress(out, every=10.0, clock=clock)
  for e in range(1, 5):
    clock.now += 1.0
    p(_report(0, e))
  assert _epochs(out) == [("1/2", "1/10")]     # a quiet period: epochs 2-4 not printed
  assert p.where() == "in group 1 at epoch 5"
  p(_report(0, 10))
  assert p.where() == "in group 2 at epoch 1"


def test_a_group_whose_every_member_diverged_has_no_best_val():
  out = io.StringIO()
  Progress(out)({**_report(0, 1, seconds=1.0), "best_val_accuracy": -1.0})
  assert "best val none  train 1.0s" in out.getvalue()
