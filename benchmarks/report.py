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

from benchmarks.families import FRAMEWORKS, JAXCOMPONENTS, MODES, PIP

# Dense peak TFLOP/s by accelerator and compute type, for model FLOPs utilisation (NVIDIA's data sheets,
# without sparsity). float32 matmuls and convolutions run as TF32 under XLA's default precision on these GPUs.
# Keys are words of the device's slug (`nvidia-h100-80gb-hbm3`); the key with the most words that all occur wins.
PEAK_TFLOPS = (
    ("h100-pcie", {"bfloat16": 756.0, "float32": 378.0}),
    ("h100-nvl", {"bfloat16": 835.5, "float32": 417.5}),
    ("h100", {"bfloat16": 989.4, "float32": 494.7}),
    ("h200-nvl", {"bfloat16": 835.5, "float32": 417.5}),
    ("h200", {"bfloat16": 989.4, "float32": 494.7}),
    ("gh200", {"bfloat16": 989.4, "float32": 494.7}),
    ("b200", {"bfloat16": 2250.0, "float32": 1100.0}),
    ("a100", {"bfloat16": 312.0, "float32": 156.0}),
    ("a10", {"bfloat16": 125.0, "float32": 62.5}),
    ("l40s", {"bfloat16": 362.1, "float32": 183.0}),
    ("l4", {"bfloat16": 121.0, "float32": 60.0}),
)
RESNET50_A100_IMG_S = 2470.0  # NVIDIA's published PyTorch ResNet-50 training, A100, mixed precision, per GPU
COLORS = {"jaxcomponents": "#1f77b4", "jaxcomponents-tuned": "#17becf", "jaxcomponents-pip": "#393b79",
          "jaxcomponents-pip-tuned": "#6b6ecf", "keras-jax": "#ff7f0e", "keras-tf": "#2ca02c", "flax": "#9467bd"}
SHORT = {"jaxcomponents": "jc", "jaxcomponents-tuned": "jc tuned", "jaxcomponents-pip": "jc pip",
         "jaxcomponents-pip-tuned": "jc pip tuned"}
KERAS = ("keras-jax", "keras-tf")


def peak_tflops(device: str, dtype: str) -> float | None:
  """The dense peak of `device` (a slug) for `dtype`, or None when it is not in the table (CPUs).

  >>> peak_tflops("nvidia-h100-80gb-hbm3", "mixed_bfloat16"), peak_tflops("nvidia-l40s", "float32")
  (989.4, 183.0)
  >>> peak_tflops("cpu", "float32") is None
  True
  """
  compute = "bfloat16" if "bfloat16" in dtype else "float32"
  words = set(device.split("-"))
  matches = [(len(key.split("-")), peaks) for key, peaks in PEAK_TFLOPS if set(key.split("-")) <= words]
  return max(matches, key=lambda match: match[0])[1][compute] if matches else None


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


def _frameworks(rows: Sequence[dict], meta: dict) -> list[str]:
  """The contenders of this run, in `FRAMEWORKS` order: those requested, else those with rows."""
  requested = set(meta.get("frameworks") or {r["framework"] for r in rows})
  return [fw for fw in FRAMEWORKS if fw in requested]


def _ratio_columns(frameworks: Sequence[str]) -> list[tuple[str, str]]:
  """(jaxcomponents contender, Keras contender) pairs compared in the ratio columns."""
  return [(jc, keras) for jc in JAXCOMPONENTS if jc in frameworks for keras in KERAS if keras in frameworks]


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in body]
  return lines


def _throughput_cell(entry: dict | None) -> str:
  if entry is None:
    return "—"
  spread = entry.get("spread")
  return rate_text(entry["items_per_s"]) + ("" if spread is None else f" ±{50 * spread:.0f}%")


def _install_rows(meta: dict) -> list[list[str]]:
  """One row per jaxcomponents contender: how it was installed, where its worker imported jaxcomponents from and
  its native library's status."""
  seen = {}
  for d in meta.get("details", []):
    seen.setdefault(d["framework"], d)
  rows = []
  for fw, how in meta.get("installs", {}).items():
    d = seen.get(fw, {})
    where = f"; imported from {d['jaxcomponents_install']}" if d.get("jaxcomponents_install") else ""
    native = d.get("jaxcomponents_cpu", {}).get("native") or "no worker answered"
    rows.append([f"{fw} install", f"{how}{where}; native library: {native}"])
  return rows


def _skips(meta: dict) -> list[str]:
  by_model: dict[str, list[dict]] = {}
  for s in meta.get("skipped", []):
    by_model.setdefault(s["model"], []).append(s)
  requested = set(meta.get("frameworks", FRAMEWORKS))
  if meta.get("tensorflow_missing"):
    requested.discard("keras-tf")
  if meta.get("pip_failed"):
    requested.difference_update(PIP)
  lines = []
  for model, skips in by_model.items():
    if {s["framework"] for s in skips} >= requested:
      reasons = sorted({s["reason"] for s in skips if s["framework"] in ("jaxcomponents", "keras-jax")})
      lines.append(f"- **{model}**: whole family skipped: {'; '.join(reasons)}.")
      continue
    lines += [f"- **{model}** / {s['framework']}: {s['reason']}." for s in skips if s["framework"] != "flax"]
  if meta.get("tensorflow_missing"):
    lines.append(f"- **keras-tf**, every family: {meta['tensorflow_missing']}.")
  if meta.get("pip_failed"):
    pip = ", ".join(f"**{fw}**" for fw in PIP if fw in meta.get("frameworks", PIP))
    lines.append(f"- FAILED {pip}, every family: {meta['pip_failed']}.")
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
  machine_rows += _install_rows(meta)
  lines += _table(["", ""], machine_rows)

  lines += ["", "## Throughput and ratios", "",
            "Items per second (images or sequences), the median over the timed steps, ± half the interquartile "
            "range. Ratios are jaxcomponents / the other contender: above 1 means jaxcomponents is faster.", ""]
  frameworks = _frameworks(rows, meta)
  ratios = _ratio_columns(frameworks)
  header = ["model", "mode", "batch", *frameworks, *(f"{SHORT[jc]} / {keras}" for jc, keras in ratios)]
  body = []
  slower = {pair: [] for pair in ratios}
  compared = {pair: 0 for pair in ratios}
  for model, mode in pairs:
    entries = {fw: keyed.get((model, mode, fw)) for fw in frameworks}
    batch = next(e["batch"] for e in entries.values() if e)
    ips = {fw: (e["items_per_s"] if e else None) for fw, e in entries.items()}
    for pair in ratios:
      if ips[pair[0]] and ips[pair[1]]:
        compared[pair] += 1
        if ips[pair[0]] < ips[pair[1]]:
          slower[pair].append(f"{model} {mode}")
    body.append([model, mode, str(batch), *(_throughput_cell(entries[fw]) for fw in frameworks),
                 *(ratio_text(ips[jc], ips[keras]) for jc, keras in ratios)])
  lines += _table(header, body)
  lines.append("")
  for (jc, keras), cells in slower.items():
    lines.append(f"- {jc} vs {keras}: compared on {compared[(jc, keras)]} (model, mode) pairs; slower on "
                 f"{len(cells)}{': ' + ', '.join(cells) if cells else ''}.")
  if chart_name:
    lines += ["", f"![throughput relative to {_reference(rows)}]({chart_name})"]

  lines += ["", "## Compile time and memory", "",
            "Compile: wall time of the first call (trace, compile, first run), apart from the steady state. "
            "Peak RSS: the contender's whole worker process (framework imports included), in MiB.", ""]
  body = []
  for model, mode in pairs:
    entries = [keyed.get((model, mode, fw)) for fw in frameworks]
    body.append([model, mode, *(f"{e['compile_s']:.1f}" if e else "—" for e in entries),
                 *(f"{e['peak_rss_mb']:,.0f}" if e else "—" for e in entries)])
  lines += _table(["model", "mode", *(f"compile s {fw}" for fw in frameworks),
                   *(f"RSS {fw}" for fw in frameworks)], body)

  lines += _tuning_section(meta)
  lines += _accelerator_section(keyed, pairs, meta, frameworks)

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


def _tuning_section(meta: dict) -> list[str]:
  """What each jaxcomponents contender had in effect (`jaxcomponents.cpu.status()` in its worker)."""
  seen = {}
  for d in meta.get("details", []):
    if d.get("jaxcomponents_cpu"):
      seen.setdefault(d["framework"], d["jaxcomponents_cpu"])
  if not seen:
    return []
  lines = ["", "## jaxcomponents' CPU settings", "",
           "`jaxcomponents` is the library as imported; `jaxcomponents-tuned` called `jaxcomponents.cpu.tune()` "
           "first, which changes the whole process (README, Benchmarks). The `-pip` contenders are the same two as "
           "`pip install .` installs the package in a fresh virtualenv, with a fresh `JAXCOMPONENTS_HOME`.", ""]
  body = [[fw, status["fast_paths"], status["native"],
           ", ".join(f"{k} {v}" for k, v in status["tuned"].items()) if isinstance(status["tuned"], dict)
           else status["tuned"]] for fw, status in seen.items()]
  return lines + _table(["contender", "CPU formulations", "native library", "tune()"], body)


def _accelerator_section(keyed: dict, pairs: list, meta: dict, frameworks: Sequence[str]) -> list[str]:
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
    for fw in (*JAXCOMPONENTS, "keras-jax", "flax"):
      entry = keyed.get((model, mode, fw))
      if entry and entry.get("flops_per_step"):
        flops = entry["flops_per_step"]
        break
    if not flops:
      continue
    cells = []
    for fw in frameworks:
      entry = keyed.get((model, mode, fw))
      if not entry:
        cells.append("—")
        continue
      tflops = flops * entry["items_per_s"] / entry["batch"] / 1e12
      cells.append(f"{tflops:.3g}" + (f" ({100 * tflops / peak:.1f}%)" if peak else ""))
    body.append([model, mode, f"{flops / 1e9:.3g}", *cells])
  lines += _table(["model", "mode", "GFLOP/step", *(f"TFLOP/s (MFU) {fw}" for fw in frameworks)], body)
  resnet = keyed.get(("resnet50", "train", "jaxcomponents"))
  if resnet:
    lines += ["", f"Anchor: NVIDIA's published ResNet-50 training, A100, mixed precision, PyTorch: about "
              f"{RESNET50_A100_IMG_S:,.0f} img/s per GPU; jaxcomponents here: {rate_text(resnet['items_per_s'])} "
              f"img/s ({dtype}, batch {resnet['batch']}, {device}). H100 dense bfloat16 peak: 989 TFLOP/s."]
  return lines


def _reference(rows: Sequence[dict]) -> str:
  """The contender the chart divides by: Keras on TensorFlow where it ran, else Keras on JAX."""
  present = {r["framework"] for r in rows}
  return next((fw for fw in ("keras-tf", "keras-jax") if fw in present), "jaxcomponents")


def chart(rows: Sequence[dict], meta: dict, path: pathlib.Path) -> pathlib.Path:
  """Each contender's throughput divided by the reference's (`_reference`), per model, one panel per mode.

  A linear scale with a line at 1: 1.1x and 2x read as such, where a log scale
  of items/s hid them.
  """
  from matplotlib.figure import Figure  # no pyplot: the process's matplotlib backend is left alone

  keyed = _index(rows, meta.get("details", []))
  reference = _reference(rows)
  modes = [mode for mode in MODES if any(r["mode"] == mode for r in rows)] or list(MODES)
  models = [m for m in (list(meta.get("families", {})) or sorted({r["model"] for r in rows}))
            if any(r["model"] == m for r in rows)]
  frameworks = [fw for fw in _frameworks(rows, meta) if fw != reference and any(r["framework"] == fw for r in rows)]
  height = 0.8 / max(len(frameworks), 1)
  rows_in = max(len(models), 1) * max(0.17 * max(len(frameworks), 1), 0.3)  # at least 0.3 in per model
  fig = Figure(figsize=(4.5 + 3.5 * len(modes), rows_in + 1.8))
  axes = fig.subplots(1, len(modes), squeeze=False, sharey=True)
  for ax, mode in zip(axes[0], modes):
    for j, fw in enumerate(frameworks):
      ys, values = [], []
      for i, model in enumerate(models):
        entry, base = keyed.get((model, mode, fw)), keyed.get((model, mode, reference))
        if entry and base:
          ys.append(i + (j - (len(frameworks) - 1) / 2) * height)
          values.append(entry["items_per_s"] / base["items_per_s"])
      if values:
        ax.barh(ys, values, height=height, color=COLORS.get(fw), label=fw)
        for y, value in zip(ys, values):
          ax.text(value, y, f" {value:.2f}", va="center", fontsize=6)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_title(f"{mode}: items/s relative to {reference}", fontsize=10)
    ax.set_xlabel(f"x {reference} (higher is faster)")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  for ax in axes[0][1:]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in labels:
        handles.append(handle)
        labels.append(label)
  top = 1 - 0.9 / fig.get_figheight()
  fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=len(labels), fontsize="small",
             frameon=False)
  fig.suptitle(f"jaxcomponents bench, {meta['size']}{' matrix' if meta.get('group') == 'matrix' else ''}, "
               f"{meta['device']}, {meta['machine']['date']}", fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, top))
  fig.savefig(path, dpi=110)
  return path


def write_report(rows: Sequence[dict], meta: dict, md_path: pathlib.Path, png_path: pathlib.Path | None):
  """Writes the markdown report (and the chart, when `png_path` is given); returns the paths written."""
  written = []
  if png_path is not None and rows:
    written.append(chart(rows, meta, png_path))
  md_path.write_text(markdown(rows, meta, png_path.name if written else None), encoding="utf-8")
  return [md_path, *written]
