"""Command line: ``hffjax train|eval|predict|plot|bench``. Flags only; the work lives in the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from hffjax.errors import HFFError


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="hffjax", description="Hyperspherical Forward-Forward in JAX.")
  p.add_argument("--debug", action="store_true", help="show full tracebacks")
  sub = p.add_subparsers(dest="command", required=True)
  t = sub.add_parser(
    "train",
    help="train (or resume) a model",
    epilog="Override any config key with --config.KEY=VALUE, e.g. --config.num_epochs=1.",
  )
  t.add_argument("--config", required=True, help="config file, e.g. configs/fashion_mnist_mlp.py")
  t.add_argument("--workdir", required=True, type=_workdir, help="where checkpoints and metrics.jsonl go")
  t.add_argument(
    "--overwrite", action="store_true", help="discard a run in --workdir trained with another config"
  )
  t.add_argument("--debug", action="store_true", help="show full tracebacks")
  d = t.add_argument_group(
    "multi-process jobs",
    "Off a cluster, start one process per host with all three. SLURM and Open MPI jobs need none; on a Cloud TPU pod slice set HFFJAX_DISTRIBUTED=1 instead.",
  )
  d.add_argument(
    "--coordinator_address", default=None, help="HOST:PORT of process 0, reachable by every process"
  )
  d.add_argument("--num_processes", type=int, default=None, help="processes in the job")
  d.add_argument("--process_id", type=int, default=None, help="this process's index, 0..N-1")
  d.add_argument(
    "--initialization_timeout", type=int, default=300, help="seconds to wait for every process to join"
  )
  e = sub.add_parser("eval", help="evaluate the latest checkpoint of a workdir")
  e.add_argument("--workdir", required=True, type=_workdir)
  e.add_argument("--data_dir", default=None, help="override the data dir saved with the run")
  e.add_argument(
    "--early_exit",
    action="store_true",
    help="accuracy, compute and speed of early exit over a threshold grid",
  )
  e.add_argument(
    "--confidence", default=None, help="--early_exit: softmax (max probability; the default) or margin"
  )
  e.add_argument(
    "--thresholds",
    default=None,
    help="--early_exit: comma-separated thresholds (default: a grid for the rule)",
  )
  e.add_argument(
    "--target_loss",
    type=_fraction,
    default=None,
    help="--early_exit: accuracy loss allowed on the validation split, in [0, 1] (default 0.002)",
  )
  e.add_argument("--debug", action="store_true", help="show full tracebacks")
  pr = sub.add_parser("predict", help="classify image files with a trained run (one JSON line per image)")
  pr.add_argument("--workdir", required=True, type=_workdir)
  pr.add_argument("images", nargs="+", help="PNG/JPEG files, or folders of them")
  pr.add_argument("--top_k", type=int, default=3, help="classes to show per image")
  pr.add_argument("--debug", action="store_true", help="show full tracebacks")
  pl = sub.add_parser("plot", help="write a trained run's figures as PNG")
  pl.add_argument("--workdir", required=True, type=_workdir)
  pl.add_argument("--out", default=None, help="folder for the PNGs (default: WORKDIR/plots)")
  pl.add_argument("--data_dir", default=None, help="override the data dir saved with the run")
  pl.add_argument("--debug", action="store_true", help="show full tracebacks")
  b = sub.add_parser("bench", help="side-by-side benchmark: HFF vs Forward-Forward vs backprop")
  b.add_argument("--out", required=True, help="JSON report, e.g. benchmarks/results/<machine>.json")
  b.add_argument("--quick", action="store_true", help="synthetic data and small models: seconds")
  b.add_argument(
    "--speed",
    action="store_true",
    help="speed only: CIFAR-shaped synthetic data, --batch_size, float32 and bfloat16, 10 and 100 classes; "
    "then ResNet-18 at 32 and 224 pixels (images/s, HFF/BP, MFU, FF/HFF inference)",
  )
  b.add_argument(
    "--batch_size", type=positive_int, default=None, help="--speed: global batch size (default 512)"
  )
  b.add_argument("--markdown", default=None, help="also write this machine's tables into this Markdown file")
  b.add_argument(
    "--mlp_epochs", type=positive_int, default=None, help="epochs for the MLP runs (default: its config)"
  )
  b.add_argument(
    "--cnn_epochs", type=positive_int, default=None, help="epochs for the CNN runs (default: its config)"
  )
  b.add_argument(
    "--scaling_examples",
    type=positive_int,
    default=None,
    help="examples timed in the class-scaling table (default 128; with --speed, the ResNet FF/HFF "
    "inference table's: 512 on an accelerator, 32 on a CPU)",
  )
  b.add_argument(
    "--configs_dir",
    default=None,
    help="folder holding fashion_mnist_{mlp,cnn}.py and their _bp/_ff twins (default: the shipped configs)",
  )
  b.add_argument("--debug", action="store_true", help="show full tracebacks")
  return p


def _bounded(kind, lo, hi=None):
  """An argparse type: a ``kind`` (int or float) in ``[lo, hi]`` (argparse turns the error into its
  usage line, exit 2)."""
  what = f"a number in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"

  def parse(text: str):
    try:
      value = kind(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < lo or (hi is not None and value > hi):
      raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value

  return parse


_fraction = _bounded(float, 0, 1)
# Public: the benchmark scripts parse their counts with it too.
positive_int = _bounded(int, 1)


def _workdir(text: str) -> str:
  """An argparse type: a non-empty path."""
  if not text.strip():
    raise argparse.ArgumentTypeError("must be a folder path, got an empty one")
  return text


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
  """``argv`` without its ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides, and those
  overrides as ``{KEY: VALUE}``: the benchmark scripts resolve the configs they train with it."""
  rest, overrides = [], {}
  it = iter(argv)
  for arg in it:
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config.") :].partition("=")
      if not eq:
        value = next(it, None)
        if value is None or value.startswith("--"):
          raise HFFError(f"--config.{key} needs a value: --config.{key}=VALUE")
      overrides[key] = value
    else:
      rest.append(arg)
  return rest, overrides


def _check_bench_flags(args) -> None:
  """Refuses a flag that the chosen bench (plain or ``--speed``) would not use."""
  if args.speed:
    unused = [
      f for f, v in (("--mlp_epochs", args.mlp_epochs), ("--cnn_epochs", args.cnn_epochs)) if v is not None
    ]
  else:
    unused = ["--batch_size"] if args.batch_size is not None else []
  if unused:
    _refuse_flags(unused, "to the bench without --speed" if args.speed else "to --speed", "leave")


def _refuse_flags(flags: list[str], where: str, remedy: str) -> None:
  """One line: ``flags`` apply only ``where``; ``remedy`` (e.g. "add it or leave") it or them out."""
  one = len(flags) == 1
  raise HFFError(
    f"{' and '.join(flags)} {'applies' if one else 'apply'} only {where}; {remedy} {'it' if one else 'them'} out"
  )


def run(argv: list[str]) -> int:
  debug = "--debug" in argv
  try:
    rest, overrides = split_overrides(argv)
    args = _parser().parse_args(rest)
    if overrides and args.command != "train":
      raise HFFError("--config.KEY=VALUE overrides only apply to `train`")
    if args.command == "bench":
      _check_bench_flags(args)
    if args.command == "eval" and not args.early_exit:
      given = [f"--{k}" for k in ("confidence", "thresholds", "target_loss") if getattr(args, k) is not None]
      if given:
        _refuse_flags(given, "with --early_exit", "add it or leave")
    if not debug:
      # Orbax's writer threads log a failed save at length; hffjax reports it as one line.
      logging.getLogger("absl").setLevel(logging.CRITICAL)
    # Imported here so `hffjax --help` answers without loading JAX.
    from hffjax import config as config_lib
    from hffjax import sharding, train

    if args.command == "train":
      config = config_lib.load_config(args.config)
      config_lib.apply_overrides(config, overrides)
      config_lib.validate_config(config)
      sharding.initialize_distributed(
        args.coordinator_address, args.num_processes, args.process_id, timeout_s=args.initialization_timeout
      )
      try:
        result = train.train_and_evaluate(config, args.workdir, overwrite=args.overwrite)
      except train.Preempted as e:
        if sharding.is_primary():
          print(f"hffjax: {e}", file=sys.stderr)
        return 130 if e.signal_name == "SIGINT" else 0
      if sharding.is_primary():
        keys = (
          "step",
          "epoch",
          "test_accuracy",
          "ensemble_accuracy",
          "layer_accuracy",
          "readout_accuracy",
          "validation_accuracy",
        )
        print(train.format_summary(result))
        print(json.dumps({k: result[k] for k in keys if k in result}))
    elif args.command == "eval":  # on a cluster's job of several processes, all of them evaluate
      sharding.initialize_distributed()
    if args.command == "eval" and args.early_exit:
      from hffjax.train.early_exit import evaluate_early_exit

      if args.data_dir:
        raise HFFError("--early_exit evaluates on the run's own data; leave out --data_dir")
      try:
        grid = [float(t) for t in args.thresholds.split(",")] if args.thresholds is not None else None
      except ValueError:
        raise HFFError(f"--thresholds must be comma-separated numbers, got {args.thresholds!r}") from None
      confidence = args.confidence or "softmax"
      target_loss = 0.002 if args.target_loss is None else args.target_loss
      result = evaluate_early_exit(args.workdir, confidence, grid, target_loss=target_loss)
      if sharding.is_primary():
        from hffjax.io import storage
        from hffjax.train.early_exit import EARLY_EXIT_FILE

        try:  # kept for `hffjax plot`
          storage.write_atomic(storage.join(args.workdir, EARLY_EXIT_FILE), json.dumps(result))
        except OSError as e:
          print(f"hffjax: warning: {storage.describe_os_error(e, args.workdir)}", file=sys.stderr)
        print(json.dumps(result))
    elif args.command == "eval":
      result = train.evaluate_workdir(args.workdir, args.data_dir)
      if sharding.is_primary():
        print(json.dumps(result))
    elif args.command == "predict":
      for line in train.predict_files(args.workdir, args.images, args.top_k):
        print(json.dumps(line))
    elif args.command == "plot":
      try:
        from hffjax import plots
      except ImportError as e:
        raise HFFError(f"`hffjax plot` needs matplotlib ({e}); pip install 'hffjax[plot]'") from None
      for path in plots.write_figures(args.workdir, args.out, args.data_dir):
        print(path)
    elif args.command == "bench":
      from hffjax import bench

      extra = {"configs_dir": args.configs_dir} if args.configs_dir else {}
      extra.update({"scaling_examples": args.scaling_examples} if args.scaling_examples else {})
      if args.speed:
        extra.update({"batch_size": args.batch_size} if args.batch_size else {})
      else:
        extra.update(mlp_epochs=args.mlp_epochs, cnn_epochs=args.cnn_epochs)
      try:
        bench.main(args.out, quick=args.quick, markdown=args.markdown, speed=args.speed, **extra)
      except train.Preempted:  # Ctrl-C in one of its trainings: their workdirs are temporary
        raise KeyboardInterrupt from None
    return 0
  except HFFError as e:
    if debug:
      raise
    print(f"hffjax: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    resumable = "; steps after the last checkpoint are not saved; re-run the same command to resume from it"
    tail = f"{resumable} (or to start, if there is none)" if argv[:1] == ["train"] else ""
    print(f"hffjax: interrupted{tail}", file=sys.stderr)
    return 130


def main() -> None:
  sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
  main()
