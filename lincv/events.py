"""TensorBoard event files of a run directory, for `tensorboard --logdir runs/`.

    workdir/tensorboard/EVENTS                 the run (TensorBoard's run "<workdir>/tensorboard")
    workdir/tensorboard/member_0003/EVENTS     member 3 of a sweep (one run per member)

The run's file holds the selected member's accuracy (`selected/val_accuracy`, a k-NN run's
`selected/cv_accuracy`, and `selected/<eval split>_accuracy`), the class templates and the
confusion matrix as images (`plots/templates`, `plots/confusion`), a sweep's HParams
experiment (every swept field with its domain; the metrics `final/val_accuracy`,
`final/train_accuracy`, `final/loss`), a k-NN run's cross-validated accuracy over k
(`knn/<metric>/cv_accuracy`, step k) and a random search's loss over its tries
(`<method>/loss`, step = try).

A member's file holds its HParams session (its swept values), `epoch/train_loss` and
`epoch/val_accuracy` at step = epoch (the numbers of metrics.jsonl), and at its last
epoch `final/*` (the numbers of results.csv), its status as text (ok / diverged /
pruned) and the session's end.

While a sweep trains, `Live` appends each member's committed epochs from the host copy
the sweep keeps (`lincv.sweep.Runner`), opening one file at a time; a resumed sweep
rewrites every file from its checkpoint's curves before it appends, and the report
rewrites them all once more from the finished results, so no step is ever written
twice. The events are written with tensorboardX's protocol buffers (no TensorFlow).
"""

import io
import math
import os
import secrets
import shutil
import struct
import time

import numpy as np
from tensorboardX.proto import api_pb2, event_pb2, plugin_hparams_pb2, summary_pb2
from tensorboardX.proto import plugin_text_pb2, tensor_pb2, tensor_shape_pb2
from tensorboardX.record_writer import masked_crc32c

FOLDER = "tensorboard"
EVENTS = "events.out.tfevents.0.lincv"   # "tfevents" in the name: TensorBoard reads it
FINAL = {"final/val_accuracy": "val_accuracy", "final/train_accuracy": "train_accuracy",
         "final/loss": "final_loss"}     # HParams metric tag -> results.csv column
SESSION_STATUS = {"ok": api_pb2.STATUS_SUCCESS, "diverged": api_pb2.STATUS_FAILURE,
                  "pruned": api_pb2.STATUS_UNKNOWN}
FLUSH_SECONDS = 10.0   # `Live` writes committed epochs at most this often (and at the end)


def member_folder(workdir: str, member: int) -> str:
  return os.path.join(workdir, FOLDER, f"member_{member:04d}")


# ------------------------------------------------------------------ records


def _record(data: bytes) -> bytes:
  """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C."""
  header = struct.pack("<Q", len(data))
  return (header + struct.pack("<I", masked_crc32c(header)) + data
          + struct.pack("<I", masked_crc32c(data)))


def _event(step: int, values: list, wall_time: float | None = None) -> bytes:
  event = event_pb2.Event(wall_time=time.time() if wall_time is None else wall_time,
                          step=int(step), summary=summary_pb2.Summary(value=values))
  return _record(event.SerializeToString())


def _start() -> bytes:
  return _record(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
                 .SerializeToString())


def scalars(values: dict) -> list:
  """Summary values of {tag: number}."""
  return [summary_pb2.Summary.Value(tag=t, simple_value=float(v)) for t, v in values.items()]


def text(tag: str, value: str):
  meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
      plugin_name="text", content=plugin_text_pb2.TextPluginData(version=0)
      .SerializeToString()))
  tensor = tensor_pb2.TensorProto(
      dtype="DT_STRING", string_val=[value.encode()],
      tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto
                                                          .Dim(size=1)]))
  return summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)


def png(tag: str, path: str):
  """An image summary of the PNG file at `path`."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with open(path, "rb") as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as im:
    width, height, channels = im.width, im.height, len(im.getbands())
  return summary_pb2.Summary.Value(tag=tag, image=summary_pb2.Summary.Image(
      height=height, width=width, colorspace=channels, encoded_image_string=data))


def _hparams(tag: str, **content):
  data = plugin_hparams_pb2.HParamsPluginData(version=0, **content).SerializeToString()
  meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
      plugin_name="hparams", content=data))
  return summary_pb2.Summary.Value(tag=f"_hparams_/{tag}", metadata=meta)


def _set(value, v) -> None:
  """A google.protobuf.Value holding `v`."""
  if isinstance(v, (bool, np.bool_)):
    value.bool_value = bool(v)
  elif isinstance(v, (int, float, np.number)):
    value.number_value = float(v)
  else:
    value.string_value = str(v)


def experiment(domains: dict, columns=tuple(FINAL.values())) -> list:
  """The HParams experiment: {field: list of values | (low, high)} and the FINAL metrics
  whose results.csv `columns` the run has."""
  infos = []
  for name, domain in domains.items():
    info = api_pb2.HParamInfo(name=name)
    if isinstance(domain, tuple):
      info.type = api_pb2.DATA_TYPE_FLOAT64
      info.domain_interval.min_value, info.domain_interval.max_value = domain
    else:
      first = domain[0]
      info.type = (api_pb2.DATA_TYPE_BOOL if isinstance(first, (bool, np.bool_)) else
                   api_pb2.DATA_TYPE_FLOAT64 if isinstance(first, (int, float, np.number))
                   else api_pb2.DATA_TYPE_STRING)
      for v in domain:
        _set(info.domain_discrete.values.add(), v)
    infos.append(info)
  metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t), display_name=c)
             for t, c in FINAL.items() if c in columns]
  return [_hparams("experiment", experiment=api_pb2.Experiment(hparam_infos=infos,
                                                               metric_infos=metrics))]


def session_start(hparams: dict, group: str = "") -> list:
  start = plugin_hparams_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
  for name, v in hparams.items():
    _set(start.hparams[name], v)
  return [_hparams("session_start_info", session_start_info=start)]


def session_end(status: str) -> list:
  end = plugin_hparams_pb2.SessionEndInfo(status=SESSION_STATUS.get(status, 0),
                                          end_time_secs=time.time())
  return [_hparams("session_end_info", session_end_info=end)]


# ------------------------------------------------------------------ files


def write_file(path: str, records: list[bytes]) -> None:
  """Writes `records` as the whole file at `path` (a temporary file renamed over it, so a
  reader never sees a half-written file)."""
  folder = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  tmp = os.path.join(folder, f".writing-{secrets.token_hex(4)}")
  try:
    with open(tmp, "wb") as f:
      f.write(b"".join(records))
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def epochs(train_loss, val_accuracy, start: int = 0) -> list[bytes]:
  """One event per trained epoch (a NaN loss is an epoch not trained), step = epoch."""
  out = []
  for e, (loss, acc) in enumerate(zip(train_loss, val_accuracy), start=start + 1):
    if not math.isnan(loss):
      out.append(_event(e, scalars({"epoch/train_loss": loss, "epoch/val_accuracy": acc})))
  return out


def member_start(member: dict, swept) -> list[bytes]:
  return [_start(), _event(0, session_start({f: member[f] for f in swept}))]


def member_end(row: dict) -> list[bytes]:
  step = row.get("epochs_run", 0)
  return [_event(step, scalars({t: row[c] for t, c in FINAL.items() if c in row})
                 + [text("status", row["status"])]),
          _event(step, session_end(row["status"]))]


def write_members(workdir: str, rows: list[dict], history: list[dict], swept) -> None:
  """Every member's file, whole, from the finished sweep's results."""
  for row, h in zip(rows, history):
    write_file(os.path.join(member_folder(workdir, row["member"]), EVENTS),
               member_start(row, swept) + epochs(h["train_loss"], h["val_accuracy"])
               + member_end(row))


def domains(config, rows: list[dict]) -> dict:
  """{swept field: its distinct values, or (low, high) of a distribution}."""
  out = {}
  for field, spec in config.sweep.items():
    spec = spec.to_dict() if hasattr(spec, "to_dict") else spec
    if isinstance(spec, dict) and next(iter(spec)) in ("uniform", "log_uniform"):
      low, high = next(iter(spec.values()))
      values = [r[field] for r in rows]
      out[field] = (float(min(low, *values)), float(max(high, *values)))
    else:
      out[field] = sorted(set(r[field] for r in rows), key=lambda v: (str(type(v)), v))
  return out


def write_run(config, workdir: str, outcome, evaluation: dict) -> None:
  """The run's file, and with a sweep's curves every member's (see the module docstring)."""
  # A k-NN run's val_accuracy is its cross-validated accuracy on the training rows.
  chosen_by = "cv" if "cv_accuracy" in outcome.best else "val"
  values = scalars({f"selected/{chosen_by}_accuracy": outcome.best["val_accuracy"],
                    f"selected/{evaluation['split']}_accuracy": evaluation["accuracy"]})
  for name in ("templates", "confusion"):
    path = os.path.join(workdir, "plots", f"{name}.png")
    if os.path.exists(path):
      values.append(png(f"plots/{name}", path))
  records = [_start(), _event(0, values)]
  if config.method == "sweep":
    records.append(_event(0, experiment(domains(config, outcome.rows), outcome.rows[0])))
  if config.method == "knn":
    for r in outcome.rows:
      records.append(_event(r["k"], scalars({f"knn/{r['metric']}/cv_accuracy":
                                              r["cv_accuracy"]})))
  for tag, curve in (getattr(outcome, "curves", None) or {}).items():
    records.extend(_event(i + 1, scalars({tag: v})) for i, v in enumerate(curve))
  write_file(os.path.join(workdir, FOLDER, EVENTS), records)
  if outcome.history is not None:
    write_members(workdir, outcome.rows, outcome.history, list(config.sweep.keys()))


class Live:
  """A sweep's member files while it trains: `rewrite` a group's members from committed
  curves, `append` the epochs committed since; at most every `every` seconds unless
  `force`d. One file is open at a time, for one write."""

  def __init__(self, workdir: str, members: list[dict], swept, every: float | None = None):
    self.workdir, self.members, self.swept = workdir, members, list(swept)
    self.every = FLUSH_SECONDS if every is None else every
    self.written: dict[int, int] = {}    # group -> epochs in its members' files
    self.last = -math.inf

  def _path(self, m: int) -> str:
    return os.path.join(member_folder(self.workdir, m), EVENTS)

  def rewrite(self, gi: int, members, train_loss, val_accuracy, upto: int) -> None:
    """Group gi's member files hold exactly its first `upto` epochs."""
    for j, m in enumerate(members):
      write_file(self._path(m), member_start(self.members[m], self.swept)
                 + epochs(train_loss[j, :upto], val_accuracy[j, :upto]))
    self.written[gi] = upto

  def append(self, gi: int, members, train_loss, val_accuracy, upto: int,
             force: bool = False) -> None:
    """Appends epochs written..upto of group gi's members (its files made if new)."""
    start = self.written.get(gi)
    if start is None:
      self.rewrite(gi, members, train_loss, val_accuracy, 0)
      start = 0
    if upto <= start or not (force or time.monotonic() - self.last >= self.every):
      return
    for j, m in enumerate(members):
      records = epochs(train_loss[j, start:upto], val_accuracy[j, start:upto], start)
      if records:
        with open(self._path(m), "ab") as f:
          f.write(b"".join(records))
    self.written[gi] = upto
    self.last = time.monotonic()

  def clear(self) -> None:
    """Removes the run's event files (a sweep that leaves no run behind)."""
    shutil.rmtree(os.path.join(self.workdir, FOLDER), ignore_errors=True)
    self.written.clear()
