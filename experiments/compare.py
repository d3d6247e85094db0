"""Print jaxcomponents runs beside their Keras twins: accuracy, mean IoU, wall time, throughput.

Reads every <runs_dir>/<name>/metrics.json the experiments wrote; the sequence
experiment gives one row per recurrent cell.

Run: python -m experiments.compare [runs_dir]
"""

from __future__ import annotations

import argparse
import glob
import json
import os

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
                  "images_per_s": cell.get("images_per_s", row["images_per_s"]),
                  "wall_time_s": cell.get("wall_s", float("nan"))})
    if not m.get("cells"):
      out.append({**row, "test_accuracy": m.get("test_accuracy", float("nan")),
                  "wall_time_s": m.get("wall_time_s", float("nan"))})
  keys = [k for k in COLUMNS if any(k in r for r in out)]
  return [{k: r.get(k, "") for k in keys} for r in sorted(out, key=lambda r: (r["experiment"], r["dataset"]))]


def parser() -> argparse.ArgumentParser:
  doc = __doc__.split("\n\n")
  result = argparse.ArgumentParser(prog="python -m experiments.compare", description=" ".join(doc[:2]).replace(
      "\n", " "))
  result.add_argument("runs_dir", nargs="?", default="runs",
                      help="the folder of run folders the experiments' --runs-dir wrote (default: runs)")
  return result


def main(argv=None):
  """Prints the table (and returns its rows); `--help` prints the usage, a missing folder is a usage error."""
  args_parser = parser()
  args = args_parser.parse_args(argv)
  if not os.path.isdir(args.runs_dir):
    args_parser.error(f"argument runs_dir: {args.runs_dir!r} is not a folder (run an experiment first, or name "
                      "the --runs-dir it wrote)")
  table = rows(args.runs_dir)
  if not table:
    print(f"no runs found in {args.runs_dir} (no <name>/metrics.json there)")
  print_table(table)
  return table


if __name__ == "__main__":
  main()
