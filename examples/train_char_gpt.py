"""Train a character-level GPT on Tiny Shakespeare (or any UTF-8 text) with tensorlite, then print a sample.

    python examples/train_char_gpt.py                  # nanoGPT's CPU config, a few minutes on 2 cores
    python examples/train_char_gpt.py --device cuda    # nanoGPT's shakespeare-char config (the gpu preset) on a GPU
    python examples/train_char_gpt.py --resume         # continue the run in --out-dir
    python examples/train_char_gpt.py --init-from gpt2 --out-dir out-gpt2   # fine-tune GPT-2 (the finetune preset)
    python examples/train_char_gpt.py --tokenizer bpe --vocab-size 4096     # learn a BPE on --data, then a GPT on it

Each field of gpt.TrainConfig is a flag (--n-layer, --batch-size, ...). Those not given come from a preset:
--preset, or else the device's (cpu: cpu, cuda: gpu) or, with --init-from, finetune; with --resume they come from
the checkpoint instead.
An --out-dir holding a checkpoint takes --resume or --overwrite, and one trainer at a time.
Exit status: 0 finished; 1 failed (a shard worker died, a file could not be written); 2 bad input (a flag, the
data, the checkpoint, the out-dir); 3 the loss diverged; 130 interrupted by Ctrl-C (a checkpoint saved first).
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorlite as tl  # noqa: E402
from cli_common import EXIT_INTERRUPTED, run_cli  # noqa: E402
from gpt import PRESETS, TrainConfig, Trainer  # noqa: E402
from gpt.config import ConfigError  # noqa: E402
from gpt.data import TOKEN_UNITS  # noqa: E402
from gpt.presets import PRETRAINED_SHAPE  # noqa: E402

ALIASES = {"learning_rate": ["--lr"]}   # field -> more flags for it


def flag(name):
    return "--" + name.replace("_", "-")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="the values of the flags not given (default: the device's, cpu or gpu for cuda)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir, with its checkpoint's values for the flags not given")
    start.add_argument("--overwrite", action="store_true",
                       help="start afresh in an --out-dir that holds a checkpoint, replacing it and its log")
    parser.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    config = parser.add_argument_group("the run's configuration (gpt.TrainConfig)")
    for field in dataclasses.fields(TrainConfig):
        options = dict(dest=field.name, default=None, help=field.metadata["help"])   # None: not given
        if field.type is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=field.type, choices=field.metadata.get("choices"))
        config.add_argument(flag(field.name), *ALIASES.get(field.name, ()), **options)
    return parser.parse_args(argv)


def config_from_args(args):
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None}
    shaped = [flag(k) for k in PRETRAINED_SHAPE if k in overrides]
    if overrides.get("init_from") and shaped:
        raise ValueError(f"{', '.join(shaped)}: the model's shape comes from --init-from {overrides['init_from']} "
                         "(only --block-size and --dropout change it)")
    if "max_iters" in overrides and "lr_decay_iters" not in overrides:
        overrides["lr_decay_iters"] = overrides["max_iters"]   # decay over the run, as nanoGPT's configs do
    try:
        if args.resume:
            return TrainConfig.resumed(args.preset, **overrides)
        return TrainConfig.from_preset(args.preset, **overrides)
    except ConfigError as err:
        raise ValueError(f"{flag(err.field)} {err.problem}") from None


def outcome(summary, unit="char"):
    """The last line of a run: how it ended, and the val loss with the iteration it was measured at (bits per
    `unit`: a char, a byte or a BPE token)."""
    line = f"{summary['status']} at iteration {summary['iter']}"
    if summary["last_eval"] is None:
        return line + f" (not evaluated in this session; best val loss {summary['best_val_loss']:.4f})"
    val = summary["last_eval"]["val"]
    return line + (f": val loss {val['loss']:.4f} at iteration {summary['eval_iter']}, perplexity "
                   f"{val['perplexity']:.2f}, {val['bpc']:.3f} bits/{unit} (best val loss "
                   f"{summary['best_val_loss']:.4f})")


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
    cfg = trainer.cfg   # with --init-from, the pretrained model's shape
    print(f"{trainer.model.num_params():,} parameters ({trainer.model.num_params(breakdown=True)}); "
          f"vocabulary {trainer.tokenizer.vocab_size}; device {cfg.device}; "
          + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items() if k not in ("data", "out_dir")))
    if args.resume:
        changes = ", ".join(f"{flag(k)} {there} -> {here}" for k, (there, here) in trainer.changed.items())
        print(f"resuming at iteration {trainer.iter_num}; " +
              (f"changed from the checkpoint: {changes}" if changes else "nothing changed from the checkpoint"))
    summary = trainer.run(progress=not args.no_progress)
    print(f"checkpoint (iteration {summary['iter']}) and loss.png in {cfg.out_dir}/")
    print(outcome(summary, TOKEN_UNITS[trainer.tokenizer.kind]))
    if args.sample_tokens > 0 and summary["status"] == "finished":
        start = tl.tensor([trainer.tokenizer.encode("\n")], device=cfg.device)
        out = trainer.model.generate(start, args.sample_tokens, temperature=0.8, top_k=40)
        print("---- sample ----\n" + trainer.tokenizer.decode(out.numpy()[0].tolist()))
    return summary


if __name__ == "__main__":
    summary = run_cli(main)
    sys.exit(EXIT_INTERRUPTED if summary["status"] == "interrupted" else 0)
