"""The markdown report and the bar chart of one benchmark run.

Example:
  >>> ratio_text(120.0, 100.0)
  '1.20'
  >>> ratio_text(None, 100.0)
  '—'
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from benchmarks.families import FRAMEWORKS, MODES

# Dense peak TFLOP/s by accelerator and compute type, for model FLOPs utilisation.
# float32 matmuls and convolutions run as TF32 under XLA's default precision on these GPUs.
PEAK_TFLOPS = (
    ("h100-pcie", {"bfloat16": 756.0, "float32": 378.0}),
    ("h100", {"bfloat16": 989.4, "float32": 494.7}),
    ("h200", {"bfloat16": 989.4, "float32": 494.7}),
    ("gh200", {"bfloat16": 989.4, "float32": 494.7}),
    ("a100", {"bfloat16": 312.0, "float32": 156.0}),
)
RESNET50_A100_IMG_S = 2470.0  # NVIDIA's published PyTorch ResNet-50 training, A100, mixed precision, per GPU
COLORS = {"jaxcomponents": "#1f77b4", "keras-jax": "#ff7f0e", "keras-tf": "#2ca02c", "flax": "#9467bd"}


def peak_tflops(device: str, dtype: str) -> float | None:
  """The dense peak of `device` for `dtype`, or None when it is not in the table (CPUs)."""
  compute = "bfloat16" if "bfloat16" in dtype else "float32"
  for key, peaks in PEAK_TFLOPS:
    if key in device:
      return peaks[compute]
  return None


def rate_text(value: float | None) -> str:
  if value is None:
    return "—"
  if value >= 100:
    return f"{value:,.0f}"
  return f"{value:.3g}"


def ratio_text(numerator: float | None, denominator: float | None) -> str:
  if not numerator or not denominator:
    return "—"
  return f"{numerator / denominator:.2f}"


def _index(rows: Sequence[dict], details: Sequence[dict]):
  keyed = {(r["model"], r["mode"], r["framework"]): dict(r) for r in rows}
  for d in details:
    key = (d["model"], d["mode"], d["framework"])
    if key in keyed:
      keyed[key].update({k: v for k, v in d.items() if k not in keyed[key]})
  return keyed


def _pairs(rows: Sequence[dict], meta: dict) -> list[tuple[str, str]]:
  order = list(meta.get("families", {})) or sorted({r["model"] for r in rows})
  present = {(r["model"], r["mode"]) for r in rows}
  return [(model, mode) for model in order for mode in MODES if (model, mode) in present]


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in body]
  return lines


def _throughput_cell(entry: dict | None) -> str:
  if entry is None:
    return "—"
  spread = entry.get("spread")
  return rate_text(entry["items_per_s"]) + ("" if spread is None else f" ±{50 * spread:.0f}%")


def _skips(meta: dict) -> list[str]:
  by_model: dict[str, list[dict]] = {}
  for s in meta.get("skipped", []):
    by_model.setdefault(s["model"], []).append(s)
  requested = set(meta.get("frameworks", FRAMEWORKS))
  if meta.get("tensorflow_missing"):
    requested.discard("keras-tf")
  lines = []
  for model, skips in by_model.items():
    if {s["framework"] for s in skips} >= requested:
      reasons = sorted({s["reason"] for s in skips if s["framework"] in ("jaxcomponents", "keras-jax")})
      lines.append(f"- **{model}**: whole family skipped: {'; '.join(reasons)}.")
      continue
    lines += [f"- **{model}** / {s['framework']}: {s['reason']}." for s in skips if s["framework"] != "flax"]
  if meta.get("tensorflow_missing"):
    lines.append(f"- **keras-tf**, every family: {meta['tensorflow_missing']}.")
  no_flax = [model for model, skips in by_model.items()
             if any(s["framework"] == "flax" for s in skips) and not {s["framework"] for s in skips} >= requested]
  if no_flax:
    lines.append(f"- plain **flax** twins exist only where natural; none for: {', '.join(no_flax)}.")
  return lines


def markdown(rows: Sequence[dict], meta: dict, chart_name: str | None) -> str:
  """The report text."""
  keyed = _index(rows, meta.get("details", []))
  pairs = _pairs(rows, meta)
  m = meta["machine"]
  device = meta["device"]
  cpu_only = device == "cpu"
  lines = [f"# jaxcomponents benchmarks: `{meta['size']}` run on {device}", ""]
  lines.append(f"Run {m['date']} at commit `{m.get('commit')}` with `{meta['command']}` "
               f"({meta.get('wall_s', 0) / 60:.1f} min). Data type: {meta['dtype']}.")
  if cpu_only:
    lines += ["", "**Every figure here comes from the CPU only** (no accelerator was used)."]
  lines += ["", "## Machine and versions", ""]
  machine_rows = [["CPU", f"{m['cpu']} ({m['cpu_cores']} cores usable)"], ["memory", f"{m['memory_gb']} GB"],
                  ["accelerator", m.get("accelerator") or "none"], ["OS", m["os"]]]
  machine_rows += [[name, f"`{version}`"] for name, version in meta["versions"].items()]
  if "tensorflow" not in meta["versions"]:
    machine_rows.append(["tensorflow", "not installed: no keras-tf rows"])
  machine_rows += [[key, f"`{value}`"] for key, value in m.get("env", {}).items()]
  lines += _table(["", ""], machine_rows)

  lines += ["", "## Throughput and ratios", "",
            "Items per second (images or sequences), the median over the timed steps, ± half the interquartile "
            "range. Ratios are jaxcomponents / the other contender: above 1 means jaxcomponents is faster.", ""]
  header = ["model", "mode", "batch", *FRAMEWORKS, "jc / keras-jax", "jc / keras-tf"]
  body, losses, compared = [], [], 0
  for model, mode in pairs:
    entries = {fw: keyed.get((model, mode, fw)) for fw in FRAMEWORKS}
    batch = next(e["batch"] for e in entries.values() if e)
    jc = entries["jaxcomponents"]
    ips = {fw: (e["items_per_s"] if e else None) for fw, e in entries.items()}
    if jc and entries["keras-jax"]:
      compared += 1
      if ips["jaxcomponents"] < ips["keras-jax"]:
        losses.append(f"{model} {mode}")
    body.append([model, mode, str(batch), *(_throughput_cell(entries[fw]) for fw in FRAMEWORKS),
                 ratio_text(ips["jaxcomponents"], ips["keras-jax"]), ratio_text(ips["jaxcomponents"], ips["keras-tf"])])
  lines += _table(header, body)
  lines += ["", f"jaxcomponents vs keras-jax: compared on {compared} (model, mode) pairs; slower on "
            f"{len(losses)}{': ' + ', '.join(losses) if losses else ''}."]
  if chart_name:
    lines += ["", f"![items per second, log scale]({chart_name})"]

  lines += ["", "## Compile time and memory", "",
            "Compile: wall time of the first call (trace, compile, first run), apart from the steady state. "
            "Peak RSS: the contender's whole worker process (framework imports included), in MiB.", ""]
  body = []
  for model, mode in pairs:
    entries = [keyed.get((model, mode, fw)) for fw in FRAMEWORKS]
    body.append([model, mode, *(f"{e['compile_s']:.1f}" if e else "—" for e in entries),
                 *(f"{e['peak_rss_mb']:,.0f}" if e else "—" for e in entries)])
  lines += _table(["model", "mode", *(f"compile s {fw}" for fw in FRAMEWORKS),
                   *(f"RSS {fw}" for fw in FRAMEWORKS)], body)

  lines += _accelerator_section(keyed, pairs, meta)

  lines += ["", "## Families", ""]
  lines += _table(["model", "architecture", "size"],
                  [[name, f["summary"], f"batch {f['batch']}, {f['size']}"] for name, f in meta["families"].items()])
  lines += ["", "## Skipped and failed", ""]
  lines += _skips(meta) or ["- nothing skipped."]
  for f in meta.get("failed", []):
    lines.append(f"- FAILED **{f['model']}** / {f['framework']} / {f['mode']}: `{f['error'][:300]}`")
  method = meta["method"]
  lines += ["", "## Method", "",
            "- Each (model, framework, mode) runs in its own worker process; workers of one (model, mode) start "
            "one after another (each compiles alone), then timed blocks of about "
            f"{method['block_s']} s run round-robin, rotating who goes first, so drift hits all contenders alike.",
            f"- {method['warmup_steps']} warm-up steps after the first call; then at least {method['min_steps']} "
            f"timed steps and {method['min_rounds']} rounds per contender, until the interquartile range is within "
            f"{100 * method['target_spread']:.0f}% of the median, {method['max_rounds']} rounds, or "
            f"{method['max_timed_s']:.0f} s of timing.",
            "- Every step is synchronised (`block_until_ready` on JAX, results fetched on TensorFlow); data are the "
            "same synthetic batch for every contender, already on the device.",
            "- train: one optimizer step (Keras's default optimizer settings; Optax equivalents on the JAX side); "
            "infer: one forward pass in inference mode. keras-jax runs Keras's own compiled `train_function` / "
            "`predict_function` on its carried state (the hot loop of `fit` / `predict`); keras-tf runs "
            "`train_on_batch` / `predict_on_batch`."]
  return "\n".join(lines) + "\n"


def _accelerator_section(keyed: dict, pairs: list, meta: dict) -> list[str]:
  device, dtype = meta["device"], meta["dtype"]
  if not any(keyed[k].get("flops_per_step") for k in keyed):
    if device == "cpu":
      return ["", "## Accelerator figures", "",
              "TFLOP/s and model FLOPs utilisation are reported on GPU runs only; this run is CPU-only. "
              f"For reference, the GPU anchors are NVIDIA's published ResNet-50 training figure "
              f"(A100, mixed precision, about {RESNET50_A100_IMG_S:,.0f} img/s per GPU in PyTorch) and the H100's "
              "dense bfloat16 peak of 989 TFLOP/s; neither is comparable with a CPU run."]
    return []
  peak = peak_tflops(device, dtype)
  lines = ["", "## Accelerator figures", "",
           "Model FLOPs per step from XLA's compiled cost analysis (jaxcomponents' step, else keras-jax's), times "
           f"steps per second. MFU against {'a dense peak of ' + str(peak) + ' TFLOP/s' if peak else 'no known peak'}"
           f" for {device} ({'bfloat16' if 'bfloat16' in dtype else 'TF32'}).", ""]
  body = []
  for model, mode in pairs:
    flops = None
    for fw in ("jaxcomponents", "keras-jax", "flax"):
      entry = keyed.get((model, mode, fw))
      if entry and entry.get("flops_per_step"):
        flops = entry["flops_per_step"]
        break
    if not flops:
      continue
    cells = []
    for fw in FRAMEWORKS:
      entry = keyed.get((model, mode, fw))
      if not entry:
        cells.append("—")
        continue
      tflops = flops * entry["items_per_s"] / entry["batch"] / 1e12
      cells.append(f"{tflops:.3g}" + (f" ({100 * tflops / peak:.1f}%)" if peak else ""))
    body.append([model, mode, f"{flops / 1e9:.3g}", *cells])
  lines += _table(["model", "mode", "GFLOP/step", *(f"TFLOP/s (MFU) {fw}" for fw in FRAMEWORKS)], body)
  resnet = keyed.get(("resnet50", "train", "jaxcomponents"))
  if resnet:
    lines += ["", f"Anchor: NVIDIA's published ResNet-50 training, A100, mixed precision, PyTorch: about "
              f"{RESNET50_A100_IMG_S:,.0f} img/s per GPU; jaxcomponents here: {rate_text(resnet['items_per_s'])} "
              f"img/s ({dtype}, batch {resnet['batch']}, {device}). H100 dense bfloat16 peak: 989 TFLOP/s."]
  return lines


def chart(rows: Sequence[dict], meta: dict, path: pathlib.Path) -> pathlib.Path:
  """A horizontal bar chart of items/s per model and contender, one panel per mode, log scale."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker

  keyed = _index(rows, meta.get("details", []))
  modes = [mode for mode in MODES if any(r["mode"] == mode for r in rows)] or list(MODES)
  models = [m for m in (list(meta.get("families", {})) or sorted({r["model"] for r in rows}))
            if any(r["model"] == m for r in rows)]
  frameworks = [fw for fw in FRAMEWORKS if any(r["framework"] == fw for r in rows)]
  height = 0.8 / max(len(frameworks), 1)
  fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 0.55 * max(len(models), 1) * 1.6 + 1.5),
                           squeeze=False, sharey=True)
  for ax, mode in zip(axes[0], modes):
    for j, fw in enumerate(frameworks):
      ys, values, low, high = [], [], [], []
      for i, model in enumerate(models):
        entry = keyed.get((model, mode, fw))
        if not entry:
          continue
        ys.append(i + (j - (len(frameworks) - 1) / 2) * height)
        values.append(entry["items_per_s"])
        low.append(max(entry["items_per_s"] - entry.get("items_per_s_p25", entry["items_per_s"]), 0.0))
        high.append(max(entry.get("items_per_s_p75", entry["items_per_s"]) - entry["items_per_s"], 0.0))
      if values:
        ax.barh(ys, values, height=height, color=COLORS.get(fw), label=fw, xerr=[low, high], capsize=2)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(f"{mode}: items/s (log scale)")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    ax.invert_yaxis()
    ax.grid(axis="x", which="both", alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  for ax in axes[0][1:]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small", frameon=False)
  fig.suptitle(f"jaxcomponents bench, {meta['size']}, {meta['device']}, {meta['machine']['date']}")
  fig.tight_layout(rect=(0, 0.05, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write_report(rows: Sequence[dict], meta: dict, md_path: pathlib.Path, png_path: pathlib.Path | None):
  """Writes the markdown report (and the chart, when `png_path` is given); returns the paths written."""
  written = []
  if png_path is not None and rows:
    written.append(chart(rows, meta, png_path))
  md_path.write_text(markdown(rows, meta, png_path.name if written else None), encoding="utf-8")
  return [md_path, *written]
