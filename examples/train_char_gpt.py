"""Train a character-level GPT on Tiny Shakespeare (or any UTF-8 text) with tensorlite, then print a sample.

    python examples/train_char_gpt.py                              # nanoGPT's CPU config, a few minutes on 2 cores
    python examples/train_char_gpt.py --device cuda --preset gpu   # nanoGPT's shakespeare-char config on a GPU
    python examples/train_char_gpt.py --resume                     # continue the run in --out-dir
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorlite as tl  # noqa: E402
from cli_common import run_cli  # noqa: E402
from gpt import PRESETS, TrainConfig, Trainer  # noqa: E402

FLAGS = {  # TrainConfig field -> (type, help)
    "max_iters": (int, "optimizer steps"), "batch_size": (int, "sequences per micro-batch"),
    "grad_accum": (int, "micro-batches per optimizer step"), "block_size": (int, "context length"),
    "n_layer": (int, "transformer blocks"), "n_head": (int, "attention heads"), "n_embd": (int, "width"),
    "dropout": (float, "dropout probability"), "learning_rate": (float, "peak learning rate"),
    "min_lr": (float, "final learning rate"), "warmup_iters": (int, "linear warmup steps"),
    "lr_decay_iters": (int, "cosine decay length"), "weight_decay": (float, "AdamW weight decay"),
    "beta1": (float, "AdamW beta1"), "beta2": (float, "AdamW beta2"), "grad_clip": (float, "clip norm (0: off)"),
    "cpu_shards": (int, "CPU: cores the batch is split across (0: auto, 1: off)"),
    "eval_interval": (int, "steps between evaluations"), "eval_iters": (int, "batches per evaluation"),
    "log_interval": (int, "steps between log lines"), "pos_encoding": (str, "learned, sinusoidal or none"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--preset", default="cpu", choices=list(PRESETS))
    parser.add_argument("--out-dir", default="out-char-gpt")
    parser.add_argument("--resume", action="store_true", help="continue from --out-dir/ckpt.npz")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--data", help="a UTF-8 text file (default: data/tinyshakespeare.txt)")
    parser.add_argument("--tokenizer", choices=["char", "byte"], default="char")
    parser.add_argument("--bias", action="store_true", help="biases in Linear and LayerNorm (presets: none, as "
                        "nanoGPT)")
    parser.add_argument("--lr", type=float, dest="learning_rate", help="peak learning rate")
    parser.add_argument("--sample-tokens", type=int, default=300, help="length of the sample printed at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false",
                        help="GPU: full float32 matmuls instead of TF32 (the default, as PyTorch's allow_tf32)")
    for name, (kind, help_text) in FLAGS.items():
        if name != "learning_rate":
            parser.add_argument("--" + name.replace("_", "-"), type=kind, help=help_text)
    return parser.parse_args(argv)


def config_from_args(args):
    overrides = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    overrides.update(out_dir=args.out_dir, device=args.device, seed=args.seed, tokenizer=args.tokenizer,
                     tf32=args.tf32)
    if args.data:
        overrides["data"] = args.data
    if args.bias:
        overrides["bias"] = True
    if "max_iters" in overrides and "lr_decay_iters" not in overrides:
        overrides["lr_decay_iters"] = overrides["max_iters"]   # decay over the run, as nanoGPT's configs do
    return TrainConfig.from_preset(args.preset, **overrides)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    trainer = Trainer(cfg, resume=args.resume)
    print(f"{trainer.model.num_params():,} parameters ({trainer.model.num_params(breakdown=True)}); "
          f"vocabulary {trainer.tokenizer.vocab_size}; device {cfg.device}; "
          + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items() if k not in ("data", "out_dir")))
    summary = trainer.run(progress=not args.no_progress)
    val = summary["last_eval"]["val"] if summary["last_eval"] else None
    if val:
        print(f"{summary['status']} at iteration {summary['iter']}: val loss {val['loss']:.4f}, perplexity "
              f"{val['perplexity']:.2f}, {val['bpc']:.3f} bits/char (best val loss {summary['best_val_loss']:.4f})")
    print(f"checkpoint and loss.png in {cfg.out_dir}/")
    if args.sample_tokens > 0 and summary["status"] == "finished":
        start = tl.tensor([trainer.tokenizer.encode("\n")], device=cfg.device)
        out = trainer.model.generate(start, args.sample_tokens, temperature=0.8, top_k=40)
        print("---- sample ----\n" + trainer.tokenizer.decode(out.numpy()[0].tolist()))
    return summary


if __name__ == "__main__":
    run_cli(main)
