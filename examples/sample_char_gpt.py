"""Sample text from a checkpoint written by train_char_gpt.py, or from a pretrained GPT-2.

    python examples/sample_char_gpt.py --out-dir out-char-gpt --start "ROMEO:" --num-samples 2
    python examples/sample_char_gpt.py --greedy              # or --top-p 0.9, or --beam 4
    python examples/sample_char_gpt.py --init-from gpt2 --start "To be, or not to be" --top-k 40
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorlite as tl  # noqa: E402
from cli_common import run_cli  # noqa: E402
from gpt import TrainConfig, beam_search, load_model, load_pretrained  # noqa: E402
from gpt.decoding import check_decoding_args  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--out-dir", help=f"a train_char_gpt.py run's out-dir (default: {TrainConfig.out_dir})")
    source.add_argument("--init-from", help="a pretrained GPT-2 instead: a hub name (gpt2, gpt2-medium, ...) or a "
                                            "Hugging Face folder, with its tokenizer")
    parser.add_argument("--start", default="\n", help="the prompt")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--greedy", action="store_true", help="always the most likely token")
    parser.add_argument("--beam", type=int, default=None, help="beam search with this width")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    check_decoding_args(args.temperature, args.top_k, args.top_p, args.greedy)
    if args.num_samples < 1 or args.max_new_tokens < 0:
        raise ValueError("--num-samples must be >= 1 and --max-new-tokens >= 0")
    if not args.start:
        raise ValueError("--start must not be empty: give at least one character of prompt")
    tl.manual_seed(args.seed)
    if args.init_from:
        model, tokenizer = load_pretrained(args.init_from, args.device)
    else:
        model, tokenizer = load_model(args.out_dir or TrainConfig.out_dir, args.device)
    prompt = tokenizer.encode(args.start)
    samples = []
    if args.beam is not None:
        beams, scores = beam_search(model, prompt, args.max_new_tokens, args.beam)
        samples = [f"(log-probability {s:.2f})\n" + tokenizer.decode(b) for b, s in zip(beams, scores)]
    else:
        for _ in range(args.num_samples):
            out = model.generate(tl.tensor([prompt], device=args.device), args.max_new_tokens,
                                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                 greedy=args.greedy)
            samples.append(tokenizer.decode(out.numpy()[0].tolist()))
    for text in samples:
        print(text + "\n---------------")
    return samples


if __name__ == "__main__":
    run_cli(main)
