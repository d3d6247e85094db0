"""Print jaxcomponents runs beside their Keras twins: accuracy, mean IoU, wall time, throughput.

The sequence experiment gives one row per recurrent cell.

Run: python -m experiments.compare [runs_dir]   (reads every runs/<name>/metrics.json)
"""

from __future__ import annotations

import glob
import json
import os
import sys

from experiments.common import print_table


COLUMNS = ("experiment", "dataset", "framework", "phase1_accuracy", "test_accuracy", "test_mean_iou", "wall_time_s",
           "images_per_s")


def rows(runs_dir: str = "runs") -> list[dict]:
  out = []
  for path in sorted(glob.glob(os.path.join(runs_dir, "*", "metrics.json"))):
    with open(path) as f:
      m = json.load(f)
    if "experiment" not in m:
      continue
    row = {"experiment": m["experiment"], "dataset": os.path.basename(str(m.get("dataset", ""))),
           "framework": m["framework"] + (f" ({m['keras_backend']})" if m.get("keras_backend") else "")}
    if "phase1_test_accuracy" in m:
      row["phase1_accuracy"] = m["phase1_test_accuracy"]
    if "test_mean_iou" in m:
      row["test_mean_iou"] = m["test_mean_iou"]
    row["images_per_s"] = m.get("images_per_s", float("nan"))
    for cell in m.get("cells", []):  # one row per cell: LSTM, GRU, simple RNN
      out.append({**row, "experiment": f"{m['experiment']}/{cell['cell']}", "test_accuracy": cell["test_accuracy"],
                  "wall_time_s": cell.get("wall_s", float("nan"))})
    if not m.get("cells"):
      out.append({**row, "test_accuracy": m.get("test_accuracy", float("nan")),
                  "wall_time_s": m.get("wall_time_s", float("nan"))})
  keys = [k for k in COLUMNS if any(k in r for r in out)]
  return [{k: r.get(k, "") for k in keys} for r in sorted(out, key=lambda r: (r["experiment"], r["dataset"]))]


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  table = rows(argv[0] if argv else "runs")
  if not table:
    print("no runs found")
  print_table(table)
  return table


if __name__ == "__main__":
  main()
