"""Tests for lincv.report: the printed table and result line say which members, in the
selection's order, by which accuracy."""

import io
import types

from lincv import config as config_lib
from lincv import report
from lincv.sweep import selection


def _row(m, acc, status="ok", **fields):
  return dict(member=m, learning_rate=0.1 * (m + 1), val_accuracy=acc, train_accuracy=acc,
              status=status, **fields)


def _members(table_text):
  return [int(line.split()[0]) for line in table_text.splitlines()[1:]]


def test_the_table_ranks_diverged_members_last_so_its_first_row_is_the_selected_one():
  # A member that diverged after a good epoch keeps that epoch's accuracy; the table put it
  # first, above the member the selection chose (diverged members are never selected).
  rows = [_row(0, 0.95, "diverged"), _row(1, 0.90), _row(2, 0.90, "pruned"), _row(3, 0.80),
          _row(4, 0.97, "diverged")]
  chosen = selection.best(rows)["member"]
  assert chosen == 1
  assert _members(report.table(rows, ["learning_rate"])) == [1, 2, 3, 4, 0]
  assert _members(report.table(rows, ["learning_rate"], top=2)) == [chosen, 2]


def test_a_knn_run_prints_its_table_by_cross_validated_accuracy():
  # The table said "best members by validation accuracy" with a val_accuracy column, over
  # the cross-validated accuracies on the training rows; the line below it said "cv".
  rows = [{"member": m, "metric": "l2", "k": k, "cv_accuracy": acc, "val_accuracy": acc,
           "status": "ok"} for m, (k, acc) in enumerate([(1, 0.95), (3, 0.97)])]
  config = config_lib.base()
  config.method = "knn"
  outcome = types.SimpleNamespace(rows=rows, best=rows[1],
                                  hparams={"features": "pixels", "metric": "l2", "k": 3})
  summary = {"eval_split": "test", "seconds": 1.0, "num_unconverged": 0, "num_members": 2,
             "num_diverged": 0, "num_pruned": 0, "best": {"test_accuracy": 0.96}}
  out = io.StringIO()
  report._print(config, "runs/x", outcome, summary, out)   # pylint: disable=protected-access
  lines = out.getvalue().splitlines()
  at = lines.index("best members by cross-validated accuracy:")
  assert lines[at + 1].split() == ["member", "metric", "k", "cv_accuracy", "status"]
  assert lines[at + 2].split() == ["1", "l2", "3", "0.97", "ok"]
  assert "selected member 1: cv 0.9700, test 0.9600" in out.getvalue()


def test_the_table_prints_distinct_accuracies_apart_and_ties_alike():
  # 0.75123 and 0.75119 (of 100,000 validation rows) both read 0.7512: a difference hidden,
  # and an order that looked like a tie broken by member number.
  rows = [_row(0, 0.75119), _row(1, 0.75123), _row(2, 0.75119), _row(3, 0.5)]
  lines = report.table(rows, []).splitlines()[1:]
  assert [line.split()[:2] for line in lines] == [["1", "0.75123"], ["0", "0.75119"],
                                                  ["2", "0.75119"], ["3", "0.5"]]
  rows = [_row(0, 0.9), _row(1, 0.5)]
  assert [line.split()[1] for line in report.table(rows, []).splitlines()[1:]] == ["0.9", "0.5"]
