"""A GPT in the shape of nanoGPT (and GPT-2's parameter names), built on tensorlite alone.

Token + position embeddings, n_layer pre-LayerNorm blocks (causal self-attention, then a 4x GELU MLP, each
added to the residual stream), a final LayerNorm and an lm_head that shares its weight with the token embedding.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import nn

from .config import ConfigError, check_range, check_types
from .decoding import check_decoding_args, sample_next

POS_ENCODINGS = ("learned", "sinusoidal", "none")
INIT_STD = 0.02   # nanoGPT's N(0, 0.02) for weights and embeddings
# Decoding multiplies one position by each weight: below this many elements (a weight that stays in cache) BLAS runs
# it on one thread, since waking a second costs more than it saves; above it (GPT-2's lm_head) memory bandwidth
# bounds the product, and a second core's bandwidth nearly halves it.
ONE_THREAD_DECODING_BELOW = 1 << 20


@dataclass
class GPTConfig:
    block_size: int = 256
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True
    pos_encoding: str = "learned"

    def __post_init__(self):
        check_types(self)
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            check_range(self, name, 1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        check_range(self, "dropout", 0, 1, high_open=True)
        if self.pos_encoding not in POS_ENCODINGS:
            raise ConfigError("pos_encoding", f"must be one of {', '.join(POS_ENCODINGS)}, got {self.pos_encoding!r}")

    def to_dict(self):
        return asdict(self)


def sinusoidal_encoding(block_size, n_embd):
    """The Transformer paper's fixed encoding: PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...)."""
    position = np.arange(block_size)[:, None]
    frequency = np.exp(-math.log(10000.0) * np.arange(0, n_embd, 2) / n_embd)
    table = np.zeros((block_size, n_embd), dtype=np.float32)
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)[:, : n_embd // 2]
    return table


class KVCache:
    """Keys and values of the positions seen so far, per layer, so a new token attends in O(T), not O(T^2)."""

    def __init__(self, n_layer):
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    @property
    def length(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def extend(self, layer, k, v):
        """Append this step's (B, H, T, D) keys and values; return all of them."""
        if self.keys[layer] is not None:
            k, v = tl.cat([self.keys[layer], k], dim=2), tl.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.n_head, self.n_embd, self.layer, self.dropout = config.n_head, config.n_embd, layer, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)   # q, k, v in one GEMM
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def attend(self, q, k, v):
        """Causal attention of the heads (the experiments in examples/experiments/ swap this to compare masks
        and scales)."""
        return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                              dropout_p=self.dropout if self.training else 0.0)

    def forward(self, x, cache=None):
        q, k, v = F.split_heads(self.c_attn(x), self.n_head)                      # (B, H, T, D) each, D = C / H
        if cache is not None:
            k, v = cache.extend(self.layer, k, v)                                  # (B, H, S, D), S >= T
        y = self.attend(q, k, v)                                                   # (B, H, T, D)
        y = F.merge_heads(y)                                                       # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))                                  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")   # GPT-2's GELU (nanoGPT uses the exact erf, slower on NumPy)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)                                      # (B, T, C)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        parts = dict(wte=nn.Embedding(config.vocab_size, config.n_embd), drop=nn.Dropout(config.dropout),
                     h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                     ln_f=nn.LayerNorm(config.n_embd, bias=config.bias))
        if config.pos_encoding == "learned":
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(parts)
        if config.pos_encoding == "sinusoidal":
            # Scaled to the token embeddings' init std (0.02): at amplitude 1 the positions would drown the
            # tokens (the Transformer paper instead scales its embeddings up by sqrt(C)).
            table = sinusoidal_encoding(config.block_size, config.n_embd) * INIT_STD
            self.register_buffer("pos_table", tl.tensor(table), persistent=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight   # weight tying: one (vocab, C) matrix for both
        self._init_weights()

    def _init_weights(self):
        """nanoGPT's: N(0, 0.02) for weights, zero biases, residual projections N(0, 0.02/sqrt(2 n_layer))."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.data[...] = 0
            elif ".ln_" not in name:    # LayerNorm gains stay one
                std = INIT_STD / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else INIT_STD
                p.data[...] = p.xp.asarray(tl.randn(p.shape).numpy() * std)

    def positions(self, start, T, device):
        """(T, C) position information for positions start .. start+T-1 (or None without any)."""
        if self.config.pos_encoding == "learned":
            return self.transformer.wpe(tl.arange(start, start + T, device=device))
        if self.config.pos_encoding == "sinusoidal":
            return self.pos_table[start:start + T]
        return None

    def forward(self, idx, targets=None, cache=None):
        """idx (B, T) integer ids -> (logits (B, T, vocab), mean cross-entropy loss or None)."""
        idx = _token_ids(idx, "GPT")
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size {self.config.block_size}")
        x = self.transformer.wte(idx)                                     # (B, T, C)
        pos = self.positions(start, T, idx.device)
        x = self.transformer.drop(x + pos if pos is not None else x)
        for block in self.transformer.h:
            x = block(x, cache)
        logits = self.lm_head(self.transformer.ln_f(x))                   # (B, T, vocab)
        if targets is None:
            return logits, None
        targets = targets if isinstance(targets, tl.Tensor) else tl.tensor(targets, device=idx.device)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW decaying only >= 2-d weights (matmuls, embeddings); biases and LayerNorm gains are not decayed."""
        params = self.parameters()
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return tl.optim.AdamW(groups, lr=learning_rate, betas=betas)

    def num_params(self, breakdown=False):
        """Parameter count (the tied lm_head counted once); with breakdown, a dict by kind of layer."""
        counts = {"token_embedding": 0, "position_embedding": 0, "attention": 0, "mlp": 0, "layernorm": 0}
        for name, p in self.named_parameters():
            kind = ("token_embedding" if ".wte." in name else "position_embedding" if ".wpe." in name else
                    "attention" if ".attn." in name else "mlp" if ".mlp." in name else "layernorm")
            counts[kind] += p.numel()
        counts["total"] = sum(counts.values())
        return counts if breakdown else counts["total"]

    def flops_per_token(self):
        """Training FLOPs per token of a full block (forward + backward), after nanoGPT's estimate_mfu (PaLM, App. B):
        6 per parameter for the matmuls plus 12·n_layer·block_size·n_embd for attention's scores and mixing."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.block_size * c.n_embd

    @classmethod
    def from_pretrained(cls, name_or_path, dropout=0.0, block_size=None):
        """GPT-2's weights from a Hugging Face folder (config.json + model.safetensors) or a hub name ("gpt2",
        "gpt2-medium", "gpt2-large", "gpt2-xl"); block_size below 1024 keeps the first positions. See
        gpt/pretrained.py."""
        from .pretrained import load_gpt2   # here, not at the top: pretrained.py builds GPTConfig from this module
        return load_gpt2(cls, name_or_path, dropout, block_size)

    def save_pretrained(self, folder, tokenizer=None):
        """Write a folder that transformers' GPT2LMHeadModel.from_pretrained loads (and GPT.from_pretrained)."""
        from .pretrained import save_gpt2
        save_gpt2(self, folder, tokenizer)

    @tl.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, greedy=False, use_cache=True):
        """Extend idx (B, T) by max_new_tokens sampled tokens.

        With the KV cache each new token runs one position through the network. Past block_size the window
        slides, every position shifts, and the cache is rebuilt from the cropped window each step (exactly what
        the uncached path computes, so both give the same tokens for the same seed).
        """
        check_decoding_args(temperature, top_k, top_p, greedy)
        idx = _token_ids(idx, "generate")
        params = self.parameters()
        small = params[0].device == "cpu" and max(p.numel() for p in params) < ONE_THREAD_DECODING_BELOW
        with tl.cpu.blas_threads(1 if small else None):
            return self._generate(idx, max_new_tokens, temperature, top_k, top_p, greedy, use_cache)

    def _generate(self, idx, max_new_tokens, temperature, top_k, top_p, greedy, use_cache):
        was_training = self.training
        self.eval()
        cache, fed = None, 0     # fed: how many tokens of idx the cache has seen
        for _ in range(max_new_tokens):
            window = idx[:, -self.config.block_size:] if idx.shape[1] > self.config.block_size else idx
            if use_cache and idx.shape[1] <= self.config.block_size:
                if cache is None:
                    cache, fed = KVCache(self.config.n_layer), 0
                logits, _ = self(idx[:, fed:], cache=cache)
                fed = idx.shape[1]
            else:
                cache = None
                logits, _ = self(window)
            next_id = sample_next(logits[:, -1, :].data, temperature, top_k, top_p, greedy)   # (B, 1)
            idx = tl.cat([idx, tl.tensor(next_id)], dim=1)
        self.train(was_training)
        return idx


def _token_ids(idx, caller):
    """idx as a Tensor, or a ValueError unless it is (B, T) with T >= 1."""
    idx = idx if isinstance(idx, tl.Tensor) else tl.tensor(idx)
    if idx.ndim != 2 or idx.shape[1] == 0:
        hint = " (one sequence: pass idx[None])" if idx.ndim == 1 and idx.shape[0] else ""
        raise ValueError(f"{caller} takes (B, T) token ids with T >= 1, got shape {idx.shape}{hint}")
    return idx
