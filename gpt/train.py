"""The training loop: warmup + cosine LR, gradient clipping, periodic evaluation, logging, checkpoints, resume.

Everything a run depends on (model, optimizer, iteration, both random streams, config, tokenizer) is in the
checkpoint, so `resume` continues the same run: on CPU, 20 steps straight and 10 + resume + 10 give identical
parameters. Ctrl-C finishes the current step, saves and returns; a nan/inf loss stops the run with a clear message
and leaves the last good checkpoint in place.
"""
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
from tqdm import tqdm

import tensorlite as tl
from tensorlite import backend
from tensorlite.nn.utils import clip_grad_norm_
from tensorlite.parallel import ShardedStep, shards_for

from .checkpoint import CHECKPOINT, CheckpointError, load_checkpoint, save_checkpoint
from .data import DEFAULT_DATA, TextDataset, load_text, make_tokenizer, tokenizer_from_dict
from .model import GPT, GPTConfig
from .ngram import metrics
from .presets import MODEL_KEYS, PRESETS

LOG = "log.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became nan or inf."""


@dataclass
class TrainConfig:
    out_dir: str = "out-char-gpt"
    device: str = "cpu"
    seed: int = 1337
    data: str = DEFAULT_DATA
    tokenizer: str = "char"
    # model
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pos_encoding: str = "learned"
    # optimisation
    batch_size: int = 12
    grad_accum: int = 1
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    cpu_shards: int = 0       # CPU: split each batch across this many cores (tensorlite.parallel); 0: auto, 1: off
    tf32: bool = True         # GPU: TF32 float32 matmuls (as PyTorch's allow_tf32); False keeps full float32
    # evaluation and logging
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10

    @classmethod
    def from_preset(cls, name, **overrides):
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in PRESETS[name].items() if k in known}, **overrides})

    def __post_init__(self):
        positive = ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters", "log_interval")
        for name in positive:
            if getattr(self, name) < (0 if name == "max_iters" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.cpu_shards < 0:
            raise ValueError(f"cpu_shards must be 0 (auto) or positive, got {self.cpu_shards}")
        if self.learning_rate <= 0 or self.min_lr < 0:
            raise ValueError(f"learning rates must be positive, got {self.learning_rate} and {self.min_lr}")
        backend.check_device(self.device)
        self.model_config()  # validates the model fields

    def model_config(self, vocab_size=1):
        return GPTConfig(vocab_size=vocab_size, **{k: getattr(self, k) for k in MODEL_KEYS})


def lr_at(cfg, it):
    return tl.optim.warmup_cosine_lr(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)


@tl.no_grad()
def evaluate(model, dataset, split="val", eval_iters=20, batch_size=12, device=None, seed=0):
    """Mean loss over eval_iters random batches, in nats, with perplexity (e^loss) and bits per token (loss/ln 2);
    eval_iters=None scores the whole split once instead (`TextDataset.windows`, batch_size windows at a time).
    The batches go to the model's device unless `device` says otherwise."""
    device = device or model.parameters()[0].device
    was_training = model.training
    model.eval()
    if eval_iters is None:
        x, y = dataset.windows(split)
        total = 0.0
        for i in range(0, len(x), batch_size):
            bx, by = (tl.tensor(a[i:i + batch_size], device=device) for a in (x, y))
            total += model(bx, by)[1].item() * bx.shape[0]   # a batch's mean, weighted by its windows
        loss = total / len(x)
    else:
        rng = np.random.default_rng(seed)
        loss = np.mean([model(*dataset.get_batch(split, batch_size, rng, device))[1].item()
                        for _ in range(eval_iters)])
    model.train(was_training)
    return metrics(float(loss))


def model_loss(model, x, y):
    """The mean loss of a batch: what a training step differentiates (module-level, so tensorlite.parallel can
    send it to its worker processes)."""
    return model(x, y)[1]


class Trainer:
    def __init__(self, cfg, resume=False):
        self.cfg = cfg
        if cfg.device == "cuda":
            backend.set_tf32(cfg.tf32)
        self.path = os.path.join(cfg.out_dir, CHECKPOINT)
        text = load_text(cfg.data)
        tl.manual_seed(cfg.seed)
        self.batch_rng = np.random.default_rng(cfg.seed)
        meta = None
        if resume:
            model_state, optimizer_state, meta = load_checkpoint(self.path)
            self.tokenizer = tokenizer_from_dict(meta["tokenizer"])
            self._check_same_model(meta)
            self._check_same_vocabulary(make_tokenizer(cfg.tokenizer, text))
        else:
            self.tokenizer = make_tokenizer(cfg.tokenizer, text)
        self.dataset = TextDataset(text, self.tokenizer, cfg.block_size)
        self.model = GPT(cfg.model_config(self.tokenizer.vocab_size)).to(cfg.device)
        self.optimizer = self.model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
        self.sharded = ShardedStep(self.model, shards_for(cfg.device, cfg.batch_size, cfg.cpu_shards,
                                                          self.model.flops_per_token() * cfg.block_size))
        self.iter_num, self.best_val = 0, math.inf
        self.saved_iter, self.last_eval = None, None
        if meta is not None:
            self._restore(model_state, optimizer_state, meta)

    def _check_same_model(self, meta):
        saved = meta["model_config"]
        wanted = {k: getattr(self.cfg, k) for k in MODEL_KEYS}
        different = {k: (saved[k], v) for k, v in wanted.items() if saved[k] != v and k != "dropout"}
        if different:
            raise CheckpointError("the checkpoint in {} was trained with another model config: {}".format(
                self.cfg.out_dir, ", ".join(f"{k}={a} there, {b} here" for k, (a, b) in different.items())))

    def _check_same_vocabulary(self, wanted):
        """Resuming with another --tokenizer or with --data of other characters would silently keep the old
        vocabulary (and train on a text it was not built for): say so instead."""
        saved = self.tokenizer
        if saved.to_dict() != wanted.to_dict():
            raise CheckpointError(
                f"the checkpoint in {self.cfg.out_dir} was trained with another vocabulary: {saved.kind} tokenizer "
                f"with {saved.vocab_size} ids there, {wanted.kind} with {wanted.vocab_size} here (another "
                "--tokenizer, or --data with other characters?)")

    def _restore(self, model_state, optimizer_state, meta):
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint {self.path} does not fit this model: {err}") from None
        self.iter_num, self.best_val = meta["iter_num"], meta["best_val_loss"]
        self.saved_iter = self.iter_num
        self.batch_rng.bit_generator.state = meta["rng"]["batches"]
        tl.set_rng_state(meta["rng"]["framework"], "cpu")

    def save(self):
        meta = {"iter_num": self.iter_num, "best_val_loss": self.best_val, "tokenizer": self.tokenizer.to_dict(),
                "model_config": self.model.config.to_dict(), "train_config": asdict(self.cfg),
                "rng": {"batches": self.batch_rng.bit_generator.state,
                        "framework": tl.get_rng_state("cpu")}}
        save_checkpoint(self.path, self.model.state_dict(), self.optimizer.state_dict(), meta)
        self.saved_iter = self.iter_num

    def step(self):
        """One optimizer step over grad_accum micro-batches; returns the loss as a 0-d Tensor (no host sync)."""
        cfg = self.cfg
        lr = lr_at(cfg, self.iter_num)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = None
        for _ in range(cfg.grad_accum):
            x, y = self.dataset.get_batch("train", cfg.batch_size, self.batch_rng, cfg.device)
            loss = self.sharded(model_loss, x, y, grad_scale=1.0 / cfg.grad_accum)   # forward and backward
            total = loss if total is None else total + loss
        if cfg.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.iter_num += 1
        return total * (1.0 / cfg.grad_accum), lr

    def evaluate(self):
        cfg = self.cfg
        seed = cfg.seed * 1_000_003 + self.iter_num   # its own stream: evaluating never shifts the training batches
        return {split: evaluate(self.model, self.dataset, split, cfg.eval_iters, cfg.batch_size, cfg.device, seed)
                for split in ("train", "val")}

    def log(self, record):
        with open(os.path.join(self.cfg.out_dir, LOG), "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, progress=True):
        """Train until max_iters (or Ctrl-C). Returns a summary dict."""
        cfg = self.cfg
        os.makedirs(cfg.out_dir, exist_ok=True)
        interrupted = []
        previous_handler = _install_sigint(interrupted)
        bar = tqdm(total=cfg.max_iters, initial=self.iter_num, disable=not progress, dynamic_ncols=True,
                   desc="training")
        tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.grad_accum
        last = {"time": time.perf_counter(), "iter": self.iter_num}
        status = "finished"
        try:
            while self.iter_num < cfg.max_iters:
                if self.iter_num % cfg.eval_interval == 0 and self.iter_num != self.saved_iter:
                    self._evaluate_and_save(bar)
                loss, lr = self.step()
                bar.update(1)
                if self.iter_num % cfg.log_interval == 0 or self.iter_num == cfg.max_iters or cfg.device == "cpu":
                    value = loss.item()   # the only host sync of a step, and only at log intervals on GPU
                    if not math.isfinite(value):
                        raise TrainingDiverged(
                            f"loss is {value} at iteration {self.iter_num}: training stopped; the last good "
                            f"checkpoint ({self.path}) was kept. Try a lower --lr or --grad-clip.")
                    if self.iter_num % cfg.log_interval == 0:
                        ms = (time.perf_counter() - last["time"]) / (self.iter_num - last["iter"]) * 1e3
                        last.update(time=time.perf_counter(), iter=self.iter_num)
                        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", ms_per_iter=f"{ms:.1f}",
                                        tok_per_s=f"{tokens_per_iter / ms * 1e3:.0f}")
                        self.log({"iter": self.iter_num, "loss": value, "lr": lr, "ms_per_iter": ms,
                                  "tokens_per_s": tokens_per_iter / ms * 1e3})
                if interrupted:
                    status = "interrupted"
                    break
            if status == "interrupted":
                self.save()
            elif self.iter_num != self.saved_iter:
                self._evaluate_and_save(bar)
        finally:
            bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        plot_losses(cfg.out_dir)
        return {"status": status, "iter": self.iter_num, "best_val_loss": self.best_val,
                "last_eval": self.last_eval}

    def _evaluate_and_save(self, bar):
        losses = self.evaluate()
        self.last_eval = losses
        self.best_val = min(self.best_val, losses["val"]["loss"])
        bar.write(f"iter {self.iter_num}: train loss {losses['train']['loss']:.4f}, val loss "
                  f"{losses['val']['loss']:.4f} (perplexity {losses['val']['perplexity']:.2f}, "
                  f"{losses['val']['bpc']:.3f} bits/char)")
        self.log({"iter": self.iter_num, "train_loss": losses["train"]["loss"], "val_loss": losses["val"]["loss"],
                  "val_perplexity": losses["val"]["perplexity"], "val_bpc": losses["val"]["bpc"]})
        if not math.isfinite(losses["val"]["loss"]):
            raise TrainingDiverged(f"val loss is {losses['val']['loss']} at iteration {self.iter_num}: stopped; "
                                   f"the last good checkpoint ({self.path}) was kept")
        self.save()


def _install_sigint(flag):
    """First Ctrl-C: finish the step, save, return. A second one interrupts at once."""
    def handler(signum, frame):
        if flag:
            raise KeyboardInterrupt
        flag.append(True)
        tqdm.write("Ctrl-C: finishing this step and saving a checkpoint (press again to abort at once)")
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:   # not the main thread: leave signals alone
        return None


def plot_losses(out_dir):
    """loss.png in out_dir: training loss per logged step and train/val loss at each evaluation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.join(out_dir, LOG)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    steps = [(r["iter"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["iter"], r["train_loss"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if steps:
        ax.plot(*zip(*steps), lw=0.8, alpha=0.6, label="train (step)")
    if evals:
        it, tr, va = zip(*evals)
        ax.plot(it, tr, "o-", label="train (eval)")
        ax.plot(it, va, "s-", label="val (eval)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = os.path.join(out_dir, "loss.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
