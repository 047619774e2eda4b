"""Named training configurations (model and optimisation), after nanoGPT's shakespeare-char configs."""
from dataclasses import fields

from .model import GPTConfig

_COMMON = dict(weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, bias=False, pos_encoding="learned",
               learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, log_interval=10)

PRESETS = {
    # seconds on a laptop: for tests and for trying the command line
    "tiny": dict(_COMMON, n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, dropout=0.0,
                 max_iters=60, lr_decay_iters=60, warmup_iters=5, eval_interval=30, eval_iters=4),
    # nanoGPT's CPU run (README of nanoGPT: "val loss 1.88"): a couple of minutes on 2 cores
    "cpu": dict(_COMMON, n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                max_iters=2000, lr_decay_iters=2000, eval_interval=250, eval_iters=20),
    # nanoGPT's config/train_shakespeare_char.py (val loss 1.4697 on one GPU)
    "gpu": dict(_COMMON, n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2,
                max_iters=5000, lr_decay_iters=5000, eval_interval=250, eval_iters=200),
    # nanoGPT's config/finetune_shakespeare.py made small enough for a CPU (its batch 1 x 1024 x 32 accumulation
    # steps is ~25 TFLOP per iteration on GPT-2): a constant small learning rate, a few evaluated steps. The model's
    # shape comes from the pretrained model, not from here.
    "finetune": dict(_COMMON, block_size=256, batch_size=4, dropout=0.0, learning_rate=3e-5, min_lr=3e-5,
                     warmup_iters=0, max_iters=20, lr_decay_iters=20, eval_interval=10, eval_iters=10,
                     log_interval=1),
}

DEVICE_PRESETS = {"cpu": "cpu", "cuda": "gpu"}   # the preset a run gets when it names only its device
PRETRAINED_PRESET = "finetune"                    # and the one it gets with init_from

# The TrainConfig fields that are GPTConfig's (the vocabulary comes from the tokenizer, not from a config)
MODEL_KEYS = tuple(f.name for f in fields(GPTConfig) if f.name != "vocab_size")
# The ones a pretrained model decides (init_from); its dropout and block_size (positions kept) are the config's
PRETRAINED_SHAPE = tuple(k for k in MODEL_KEYS if k not in ("dropout", "block_size"))
