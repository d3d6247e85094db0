"""What `Model.fit` costs over the hand-written jitted step loop: `python -m benchmarks.fit_overhead`.

Three ways to train the same model on the same arrays, batch after batch, one epoch each round:

- `loop`: the loop a Flax user writes: NumPy batches sliced from the arrays, `state, logs = step(state, batch)`;
- `Model.fit`: `jaxcomponents.Model.fit(x, y, batch_size=..., verbose=0)`, no callbacks;
- `Model.fit + batch logs`: the same with a callback that reads every batch's loss (a device sync per step);
- `Model.fit, steps_per_execution=N`: `compile(steps_per_execution=N)`, Keras's argument: N batches train as
  one compiled call (a scan), so XLA:CPU allocates one call's temporary buffers for N steps.

Rounds alternate between the three (the machine's drift hits all alike); each figure is the median of the
rounds. Writes `benchmarks/results/fit_overhead.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from benchmarks.jc_models import RecurrentClassifier, SeedCNN
from jaxcomponents import Model, callbacks, optimizers
from jaxcomponents.training import TrainState, make_train_step

CASES = {
    "seed CNN (28x28x1, batch 128, Adadelta)": (lambda: SeedCNN(5), (28, 28, 1), 5, 128, "adadelta"),
    "LSTM (32 steps x 32, 64 units, batch 32, Adam)": (lambda: RecurrentClassifier("lstm", 64, 10), (32, 32), 10,
                                                      32, "adam"),
}


def _data(shape, classes, count, seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((count, *shape)).astype(np.float32), rng.integers(0, classes, count)


def hand_loop(module, x, y, batch, optimizer):
  state = TrainState.create(module, optimizers.get(optimizer), x[:1])
  step = make_train_step("sparse_categorical_crossentropy")

  def epoch():
    nonlocal state
    state = step.reset(state)
    for start in range(0, len(x), batch):
      state, logs = step(state, {"x": x[start:start + batch], "y": y[start:start + batch]})
    jax.block_until_ready(logs)

  return epoch


def model_fit(module, x, y, batch, optimizer, batch_logs=False, steps_per_execution=1):
  model = Model(module)
  model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", steps_per_execution=steps_per_execution)
  read = [callbacks.LambdaCallback(on_train_batch_end=lambda index, logs: logs["loss"])] if batch_logs else []

  def epoch():
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=read)
    jax.block_until_ready(model.state.params)

  return epoch


def measure(rounds: int, steps: int) -> list[dict]:
  rows = []
  for name, (make, shape, classes, batch, optimizer) in CASES.items():
    x, y = _data(shape, classes, steps * batch)
    runs = {"loop": hand_loop(make(), x, y, batch, optimizer),
            "Model.fit": model_fit(make(), x, y, batch, optimizer),
            "Model.fit + batch logs": model_fit(make(), x, y, batch, optimizer, batch_logs=True),
            **{f"Model.fit, steps_per_execution={n}": model_fit(make(), x, y, batch, optimizer, steps_per_execution=n)
               for n in (4, 8)}}
    for run in runs.values():  # compile, and a warm epoch
      run()
      run()
    times = {label: [] for label in runs}
    for r in range(rounds):
      order = list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]
      for label in order:
        start = time.perf_counter()
        runs[label]()
        times[label].append(time.perf_counter() - start)
    base = statistics.median(times["loop"])
    for label, seconds in times.items():
      median = statistics.median(seconds)
      rows.append({"model": name, "how": label, "steps": steps, "batch": batch, "epoch_s": median,
                   "items_per_s": steps * batch / median, "vs_loop": base / median})
  return rows


def report(rows: list[dict], command: str) -> str:
  lines = ["# `Model.fit` against the hand-written step loop", "",
           f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
           f"JAX {jax.__version__} ({jax.default_backend()}). Command: `{command}`.", "",
           "| model | how | items/s | epoch (s) | vs loop |", "|---|---|---:|---:|---:|"]
  lines += [f"| {r['model']} | {r['how']} | {r['items_per_s']:.0f} | {r['epoch_s']:.3f} | {r['vs_loop']:.3f} |"
            for r in rows]
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.fit_overhead", description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=9, help="timed epochs per way (the median is reported)")
  parser.add_argument("--steps", type=int, default=40, help="steps per epoch")
  parser.add_argument("--out", default="benchmarks/results/fit_overhead", help="output path without suffix")
  args = parser.parse_args(argv)
  if args.rounds < 1 or args.steps < 1:
    parser.error(f"--rounds {args.rounds} --steps {args.steps}: both must be positive integers")
  rows = measure(args.rounds, args.steps)
  command = "python -m benchmarks.fit_overhead " + f"--rounds {args.rounds} --steps {args.steps}"
  with open(args.out + ".json", "w") as f:
    json.dump(rows, f, indent=1)
  text = report(rows, command)
  with open(args.out + ".md", "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
