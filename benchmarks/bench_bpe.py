"""How long gpt.BPETokenizer takes to learn merges from a text and to encode it, with tiktoken beside it.

    python benchmarks/bench_bpe.py                              # Tiny Shakespeare, 8192 tokens learned from it
    python benchmarks/bench_bpe.py --tokenizer FOLDER           # GPT-2's own files (vocab.json + merges.txt)
    python benchmarks/bench_bpe.py --tokenizer gpt2             # the same from the hub (needs network)

Encoding is timed from a cold cache (a fresh tokenizer each time: every distinct pre-token merged once, as a new
text would), on one core (both tokenizers are single-threaded here: tiktoken's encode_ordinary). tiktoken reads
the same two files with its own loader, when it is importable, and must give the same ids.
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from gpt.bpe import END_OF_TEXT, BPETokenizer  # noqa: E402
from gpt.data import DEFAULT_DATA, load_text  # noqa: E402


def median_seconds(fn, iters):
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tiktoken_encoding(tokenizer, folder):
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public
    os.environ["TIKTOKEN_CACHE_DIR"] = ""   # no file cache: the files are read where they are
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(os.path.join(folder, "merges.txt"),
                                                          os.path.join(folder, "vocab.json"))
    return tiktoken.Encoding("bench", pat_str=tiktoken_ext.openai_public.r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={END_OF_TEXT: tokenizer.eot_token})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--chars", type=int, help="only the first CHARS characters of the text")
    parser.add_argument("--tokenizer", help="a folder with GPT-2's files, or a hub name; default: learn merges")
    parser.add_argument("--vocab-size", type=int, default=8192, help="tokens to learn when no --tokenizer is given")
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    text = load_text(args.data)[:args.chars]
    print(f"{args.data}: {len(text):,} characters, {len(text.encode('utf-8')) / 2**20:.2f} MiB")

    if args.tokenizer:
        tokenizer = BPETokenizer.from_pretrained(args.tokenizer)
    else:
        start = time.perf_counter()
        tokenizer = BPETokenizer.train(text, args.vocab_size)
        print(f"learning {len(tokenizer.merges):,} merges: {time.perf_counter() - start:.2f} s")

    def encode_cold():
        return BPETokenizer(tokenizer.merges, tokenizer.tokens).encode(text)
    ids = encode_cold()
    assert tokenizer.decode(ids) == text
    size = len(text.encode("utf-8")) / 2**20
    seconds = median_seconds(encode_cold, args.iters)
    print(f"{'tokenizer':28s} {'encode s':>9s} {'MiB/s':>7s} {'tokens':>10s}")
    print(f"{'gpt.BPETokenizer':28s} {seconds:9.2f} {size / seconds:7.2f} {len(ids):10,}")
    if importlib.util.find_spec("tiktoken") is None:
        print("tiktoken is not importable: timing gpt.BPETokenizer alone")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-bpe-") as folder:
        tokenizer.save(folder)
        encoding = tiktoken_encoding(tokenizer, folder)
    theirs = encoding.encode_ordinary(text)
    seconds = median_seconds(lambda: encoding.encode_ordinary(text), args.iters)
    print(f"{'tiktoken (the same files)':28s} {seconds:9.2f} {size / seconds:7.2f} {len(theirs):10,}  "
          f"{'same ids' if theirs == ids else 'DIFFERENT ids'}")
    return 0 if theirs == ids else 1

if __name__ == "__main__":
    sys.exit(main())
