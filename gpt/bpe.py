"""GPT-2's byte-level byte-pair encoding: load it, encode, decode, and learn merges from your own text.

How GPT-2 turns text into ids, in three steps:
1. Pre-tokenize: GPT-2's regex cuts the text into words, numbers, runs of punctuation and of spaces, and English
   contractions (" the", " 2024", "'ll", "   "). Merges never cross these pieces, so a token never spans
   a word and the space after it.
2. Bytes as characters: each piece is written as its UTF-8 bytes, and each byte as one printable character
   (`bytes_to_unicode`), so any text, in any script, is a string over 256 symbols, and no byte is ever unknown.
3. Merges by rank: the vocabulary learned two symbols at a time ("Ġ" + "t" -> "Ġt", then "Ġt" + "he" -> "Ġthe",
   ...); the earlier a merge was learned, the lower its rank. A piece is merged pair by pair, always the adjacent
   pair of lowest rank first, until no adjacent pair has a rank. Each final symbol is one token id.

`BPETokenizer.train` learns merges the way minbpe does (the most frequent adjacent pair becomes a new token,
repeatedly); `save` writes GPT-2's two files, vocab.json (token -> id) and merges.txt (one merge per line, by
rank), which Hugging Face's and tiktoken's loaders read.
"""
import heapq
import json
import os
from collections import Counter, defaultdict

import regex
from tqdm.auto import tqdm

from .checkpoint import CheckpointError
from .pretrained import resolve_files

# GPT-2's pre-tokenizer (openai/gpt-2, src/encoder.py): contractions, then letters, digits and other symbols each
# with at most one leading space, then whitespace. `\s+(?!\S)` leaves the last space of a run to the next word,
# so " the" keeps its space. \p{L} and \p{N} (Unicode letters and digits) are why this needs `regex`, not `re`.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRE_TOKENIZER = regex.compile(GPT2_PATTERN)
END_OF_TEXT = "<|endoftext|>"
# The two file layouts GPT-2's vocabulary ships in: Hugging Face's names, then OpenAI's original ones.
VOCAB_FILES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
MERGES_HEADER = "#version: 0.2"


def bytes_to_unicode():
    """byte value -> the printable character GPT-2 writes it as.

    Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 (control
    characters, space, DEL, no-break space, soft hyphen) are moved to chr(256), chr(257), ... so every symbol of
    the vocabulary is visible (the space byte becomes 'Ġ', newline 'Ċ'). The order of the keys is also the order
    of GPT-2's first 256 token ids."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    moved = (b for b in range(256) if b not in table)
    table.update((b, chr(256 + n)) for n, b in enumerate(moved))
    return table


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}


def _merge_pair(symbols, pair, merged):
    """symbols with every non-overlapping occurrence of the adjacent pair, left to right, replaced by merged."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPETokenizer:
    """GPT-2's byte-level BPE. `merges`: (left, right) pairs of vocabulary strings, lowest rank first; `tokens`:
    every token's string, indexed by id (None: GPT-2's order, the 256 bytes, one token per merge, then
    `special_tokens`). Special tokens such as <|endoftext|> have ids and decode to their text, but `encode`
    treats text as ordinary text (as GPT-2's encoder and tiktoken's encode_ordinary do), so it never emits one."""
    kind = "bpe"

    def __init__(self, merges, tokens=None, special_tokens=(END_OF_TEXT,)):
        self.merges = [tuple(m) for m in merges]
        if tokens is None:
            tokens = list(BYTE_ENCODER.values()) + [a + b for a, b in self.merges] + list(special_tokens)
        self.tokens = list(tokens)
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        if len(self.token_to_id) != len(self.tokens):
            raise ValueError("BPE vocabulary lists a token twice")
        missing = [c for c in BYTE_ENCODER.values() if c not in self.token_to_id]
        if missing:
            raise ValueError(f"BPE vocabulary lacks {len(missing)} of the 256 byte tokens (e.g. {missing[0]!r})")
        for rank, (a, b) in enumerate(self.merges):
            if a not in self.token_to_id or b not in self.token_to_id or a + b not in self.token_to_id:
                raise ValueError(f"BPE merge {rank} ({a!r} + {b!r}) uses or makes a token not in the vocabulary")
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        learned = set(BYTE_ENCODER.values()) | {a + b for a, b in self.merges}
        self.special_tokens = {t: i for i, t in enumerate(self.tokens) if t not in learned}
        self.id_to_bytes = [t.encode("utf-8") if t in self.special_tokens else bytes(BYTE_DECODER[c] for c in t)
                            for t in self.tokens]
        self.cache = {}   # pre-token -> its ids: text repeats its words, so most pieces are merged only once

    @property
    def vocab_size(self):
        return len(self.tokens)

    @property
    def eot_token(self):
        """The id of <|endoftext|>, which separates documents (None when the vocabulary has none)."""
        return self.special_tokens.get(END_OF_TEXT)

    # ----- encoding and decoding
    def bpe(self, piece):
        """One pre-token's byte characters -> its final symbols: merge the adjacent pair of lowest rank, everywhere
        it occurs, until no adjacent pair is a merge."""
        symbols = list(piece)
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            symbols = _merge_pair(symbols, best, best[0] + best[1])
        return symbols

    def encode_piece(self, piece):
        ids = self.cache.get(piece)
        if ids is None:
            symbols = self.bpe("".join(BYTE_ENCODER[b] for b in piece.encode("utf-8")))
            ids = self.cache[piece] = [self.token_to_id[s] for s in symbols]
        return ids

    def encode(self, text):
        """str -> list of token ids (text is never parsed for special tokens)."""
        ids = []
        for piece in PRE_TOKENIZER.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def decode(self, ids):
        """Token ids -> str. The ids' bytes are joined before decoding, so a character split across tokens comes
        back whole; bytes that are not UTF-8 (possible from a model's samples) become U+FFFD."""
        ids = [int(i) for i in ids]
        bad = next((i for i in ids if not 0 <= i < self.vocab_size), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside this vocabulary of {self.vocab_size} tokens")
        return b"".join(self.id_to_bytes[i] for i in ids).decode("utf-8", errors="replace")

    # ----- learning merges
    @classmethod
    def train(cls, text, vocab_size, verbose=True):
        """Learn vocab_size - 257 merges from text (256 byte tokens and <|endoftext|> are the rest), minbpe's way:
        count every adjacent pair of symbols inside the pre-tokens, merge the most frequent pair into a new token,
        repeat. Ties go to the pair of smaller ids (deterministic, the same on every machine).

        Rather than recount the whole text for every merge, it counts each distinct pre-token once, weighted by
        how often it occurs, and after a merge recounts only the pre-tokens that contained the merged pair; a heap
        holds the counts (stale entries are skipped when popped)."""
        n_merges = int(vocab_size) - len(BYTE_ENCODER) - 1
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least 257 (256 bytes and {END_OF_TEXT}), got {vocab_size}")
        byte_id = {c: i for i, c in enumerate(BYTE_ENCODER.values())}      # GPT-2's order of the byte tokens
        names = list(BYTE_ENCODER.values())                                # id -> token string
        piece_counts = Counter(PRE_TOKENIZER.findall(text))
        words = [[byte_id[BYTE_ENCODER[b]] for b in piece.encode("utf-8")] for piece in piece_counts]
        freqs = list(piece_counts.values())
        pair_counts, where = Counter(), defaultdict(set)                   # pair -> count, pair -> word indices
        for w, (word, freq) in enumerate(zip(words, freqs)):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freq
                where[pair].add(w)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        merges = []
        for _ in tqdm(range(n_merges), desc="learning BPE merges", unit="merge", disable=not verbose):
            while heap and -heap[0][0] != pair_counts.get(heap[0][1], 0):
                heapq.heappop(heap)                                        # a count that has changed since
            if not heap:
                raise ValueError(f"the text has no adjacent pair left to merge after {len(merges)} merges: "
                                 f"vocab_size {vocab_size} needs {n_merges}; use a longer text or a smaller vocab_size")
            _, pair = heapq.heappop(heap)
            new_id = len(names)
            names.append(names[pair[0]] + names[pair[1]])
            merges.append((names[pair[0]], names[pair[1]]))
            changed = Counter()
            for w in where.pop(pair):
                word, freq = words[w], freqs[w]
                for p in zip(word, word[1:]):
                    changed[p] -= freq
                words[w] = word = _merge_pair(word, pair, new_id)
                for p in zip(word, word[1:]):
                    changed[p] += freq
                    where[p].add(w)
            for p, delta in changed.items():
                if delta:
                    pair_counts[p] += delta
                    if pair_counts[p] > 0:
                        heapq.heappush(heap, (-pair_counts[p], p))
                    else:
                        del pair_counts[p]
        return cls(merges)

    # ----- files
    @classmethod
    def from_files(cls, vocab_path, merges_path):
        """GPT-2's two files: a JSON object token -> id (ids 0..N-1) and the merges, one "left right" per line."""
        try:
            with open(vocab_path, encoding="utf-8") as f:
                vocab = json.load(f)
            with open(merges_path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"cannot read the BPE vocabulary {vocab_path} / {merges_path}: {err}") from None
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise CheckpointError(f"{vocab_path}: token ids must be 0..{len(vocab) - 1}, each once")
        tokens = sorted(vocab, key=vocab.get)
        lines = [line for line in lines if line and not line.startswith("#version")]
        merges = [tuple(line.split(" ")) for line in lines]
        bad = next((line for line, m in zip(lines, merges) if len(m) != 2), None)
        if bad is not None:
            raise CheckpointError(f"{merges_path}: a merge line is two tokens and one space, got {bad!r}")
        try:
            return cls(merges, tokens)
        except ValueError as err:
            raise CheckpointError(f"{vocab_path} and {merges_path} do not fit together: {err}") from None

    @classmethod
    def from_pretrained(cls, name_or_path):
        """GPT-2's tokenizer from a folder with vocab.json + merges.txt (or encoder.json + vocab.bpe), or from a
        hub name such as "gpt2" (needs huggingface_hub and network, see gpt/pretrained.py)."""
        return cls.from_files(*resolve_files(name_or_path, VOCAB_FILES, "GPT-2 tokenizer"))

    def save(self, folder):
        """Write vocab.json and merges.txt into folder (made if missing); returns their paths."""
        os.makedirs(folder, exist_ok=True)
        vocab_path, merges_path = (os.path.join(folder, name) for name in VOCAB_FILES[0])
        with open(vocab_path, "w", encoding="utf-8") as f:
            json.dump(self.token_to_id, f, ensure_ascii=False)
        with open(merges_path, "w", encoding="utf-8") as f:
            f.write("\n".join([MERGES_HEADER] + [f"{a} {b}" for a, b in self.merges]) + "\n")
        return vocab_path, merges_path

    # ----- checkpoints
    def to_dict(self):
        """JSON-able and self-contained, for a tensorlite checkpoint's metadata (no file needed to sample it)."""
        return {"kind": self.kind, "tokens": self.tokens, "merges": [f"{a} {b}" for a, b in self.merges]}

    @classmethod
    def from_dict(cls, d):
        return cls([tuple(m.split(" ")) for m in d["merges"]], d["tokens"])
