"""Print jaxcomponents runs beside their Keras twins: accuracy, wall time, throughput.

Run: python -m experiments.compare [runs_dir]   (reads every runs/<name>/metrics.json)
"""

from __future__ import annotations

import glob
import json
import os
import sys

from experiments.common import print_table


COLUMNS = ("experiment", "dataset", "framework", "phase1_accuracy", "test_accuracy", "wall_time_s", "images_per_s")


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
    row["test_accuracy"] = m.get("test_accuracy", float("nan"))
    row["wall_time_s"] = m.get("wall_time_s", sum(c.get("wall_s", 0.0) for c in m.get("cells", [])))
    row["images_per_s"] = m.get("images_per_s", float("nan"))
    out.append(row)
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
