"""An interactive page of one prompt's forward and backward through every layer and head of a trained model.

    python examples/explore_attention.py --out-dir out-char-gpt --prompt "ROMEO:"
    python examples/explore_attention.py --init-from gpt2 --prompt "The capital of France is" --window 32

Writes one self-contained HTML file (data inline: no server, no network) and prints where it is. Forward: every
head's attention pattern and the model's next-token guesses. Backward: pick a position and a target token and see,
per head, the gradients on the attention probabilities (dP) and scores (dS), the gradient reaching the residual
stream after each block, and each token's saliency; all computed by tensorlite's own backward (gpt/explore.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cli_common import run_cli  # noqa: E402
from gpt import CheckpointError, TrainConfig, load_model, load_pretrained  # noqa: E402
from gpt.checkpoint import CHECKPOINT  # noqa: E402
from gpt.explore import DEFAULT_BUDGET, DEFAULT_TOP_K, DEFAULT_WINDOW, check_writable, explore, write_page  # noqa: E402

PAGE = "explore.html"   # the default file name inside --out-dir


def model_and_tokenizer(args):
    """The model to explore: a pretrained GPT-2 (--init-from), or the checkpoint in --out-dir."""
    if args.init_from:
        return load_pretrained(args.init_from, args.device)
    if not os.path.isfile(os.path.join(args.out_dir, CHECKPOINT)):
        raise CheckpointError(f"no checkpoint in {args.out_dir} (no {CHECKPOINT}): train one first with "
                              f"python examples/train_char_gpt.py --out-dir {args.out_dir}")
    return load_model(args.out_dir, device=args.device)


def positions_arg(text):
    """'--positions 3,7,-1' -> [3, 7, -1]"""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positions like 3,7,-1, got {text!r}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--out-dir", help=f"the training run whose {CHECKPOINT} to explore "
                                          f"(default: {TrainConfig.out_dir})")
    source.add_argument("--init-from", help="a pretrained GPT-2 instead: a hub name (gpt2, gpt2-medium, ...) or a "
                                            "Hugging Face folder, with its tokenizer")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--output", help=f"where to write the page (default: <out-dir>/{PAGE}; with --init-from, "
                                         f"{PAGE} here)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="how many of the prompt's last tokens the page shows (the model reads them all)")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                        help="next-token guesses shown per position, each also a backward target")
    parser.add_argument("--positions", type=positions_arg,
                        help="token positions to precompute gradients for (0-based, negative from the end); "
                             f"default: the last ones whose dP and dS fit {DEFAULT_BUDGET:,} values")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or TrainConfig.out_dir
    output = args.output or (PAGE if args.init_from else os.path.join(args.out_dir, PAGE))
    model, tokenizer = model_and_tokenizer(args)
    check_writable(output)
    result = explore(model, tokenizer, args.prompt, window=args.window, top_k=args.top_k, positions=args.positions,
                     progress=not args.no_progress)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    path = write_page(result, output)
    shown = [result["start"] + entry["position"] for entry in result["backward"]]
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB; {result['n_tokens']} tokens, gradients for "
          f"position{'s' if len(shown) > 1 else ''} {', '.join(map(str, shown))}): open it in a browser, "
          f"file://{path}")
    return path


if __name__ == "__main__":
    run_cli(main)
