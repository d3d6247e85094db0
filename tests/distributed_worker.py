"""One process of a multi-process training run, as a user's script would be (tests/test_distributed.py).

    python -m tests.distributed_worker OUT --processes 2 --process-id 0 --port 12345 [--checkpoint-dir D] [--steps N]

The same script runs on one process or many: it calls `initialize_distributed`
and `fit`; the dataset loads this process's part of every global batch.
"""

import argparse

import numpy as np


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("out")
  parser.add_argument("--processes", type=int, default=1)
  parser.add_argument("--process-id", type=int, default=0)
  parser.add_argument("--port", type=int, default=0)
  parser.add_argument("--checkpoint-dir")
  parser.add_argument("--resume", action="store_true")
  parser.add_argument("--steps", type=int)
  parser.add_argument("--size", type=int, default=100)
  parser.add_argument("--disagree", action="store_true", help="process 1 builds a dataset one example larger")
  args = parser.parse_args()

  from jaxcomponents.training import initialize_distributed

  if args.processes > 1:
    initialize_distributed(f"127.0.0.1:{args.port}", args.processes, args.process_id, timeout_s=60)

  import jax
  import optax

  from jaxcomponents.data import ArrayDataset
  from jaxcomponents.training import TrainState, fit, make_train_step
  from tests.training_problem import MLP, blobs, xent

  if args.disagree and args.process_id == 1:
    args.size += 1
  x, y = blobs(args.size)
  data = ArrayDataset(x, y, batch_size=16, seed=7)
  # Which examples this process loads in epoch 0: their indices, and whether each is real or padding.
  seen = ArrayDataset(np.arange(args.size), np.arange(args.size), batch_size=16, seed=7)
  loaded = [(b["y"], b["mask"]) for b in seen.epoch(0)]
  state = TrainState.create(MLP(), optax.sgd(0.1, momentum=0.9), x[:2])
  epochs = None if args.steps else 2
  state, _ = fit(state, make_train_step(xent), data, epochs=epochs, steps=args.steps, verbose=0,
                 checkpoint_dir=args.checkpoint_dir, resume=args.resume)
  leaves = [np.asarray(jax.device_get(a)) for a in jax.tree.leaves((state.params, state.batch_stats))]
  np.savez(args.out, devices=jax.device_count(), processes=jax.process_count(), step=int(state.step),
           indices=np.concatenate([i for i, _ in loaded]), mask=np.concatenate([m for _, m in loaded]),
           **{f"leaf_{i}": a for i, a in enumerate(leaves)})


if __name__ == "__main__":
  main()
