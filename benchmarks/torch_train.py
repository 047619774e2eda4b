"""nanoGPT's train.py cut down to what the README's training command does, in PyTorch: the other side of
`bench_train.py --end-to-end`.

    python benchmarks/torch_train.py --out-dir /tmp/out-torch --config '{"max_iters": 300, ...}'

The run `python examples/train_char_gpt.py` makes, written the way nanoGPT writes it, with
benchmarks/torch_reference.py's model: the text's sorted characters as ids (nanoGPT's prepare.py: 65 for Tiny
Shakespeare), the first 90% to train on, random windows drawn with torch.randint, warmup + cosine learning rate,
AdamW decaying the >= 2-d weights, gradient clipping; both splits evaluated (`estimate_loss`: eval_iters batches
each, model.eval() under torch.no_grad()) every eval_interval iterations and at the end, a checkpoint (model,
optimizer, iteration, best val loss, config) written at each evaluation, a log line every log_interval iterations,
and at the end a sample of --sample-tokens characters (temperature 0.8, top-k 40, a KV cache up to block_size and
the window cropped after it, as gpt/model.py's generate). The configuration comes from --config (bench_train.py
passes the trainer's preset), so both sides run the same model on the same text with the same schedule.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import TorchGPT  # noqa: E402


def lr_at(cfg, it):
    """nanoGPT's get_lr: linear warmup, cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if it < cfg["warmup_iters"]:
        return cfg["learning_rate"] * (it + 1) / (cfg["warmup_iters"] + 1)
    if it > cfg["lr_decay_iters"]:
        return cfg["min_lr"]
    ratio = (it - cfg["warmup_iters"]) / max(1, cfg["lr_decay_iters"] - cfg["warmup_iters"])
    return cfg["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg["learning_rate"] - cfg["min_lr"])


def get_batch(data, cfg):
    ix = torch.randint(len(data) - cfg["block_size"], (cfg["batch_size"],))
    x = torch.stack([torch.from_numpy(data[i:i + cfg["block_size"]].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + cfg["block_size"]].astype(np.int64)) for i in ix])
    return x, y


@torch.no_grad()
def estimate_loss(model, splits, cfg):
    out = {}
    model.eval()
    for split, data in splits.items():
        losses = torch.zeros(cfg["eval_iters"])
        for k in range(cfg["eval_iters"]):
            _, loss = model(*get_batch(data, cfg))
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


@torch.no_grad()
def sample(model, idx, new_tokens, block_size, temperature=0.8, top_k=40):
    """idx (1, T) extended by new_tokens sampled ids: the KV cache while the text fits in block_size, then the
    cropped window recomputed at each step."""
    model.eval()
    caches, fed = [[] for _ in model.h], 0
    for _ in range(new_tokens):
        if idx.shape[1] <= block_size:
            logits = model.logits(idx[:, fed:], fed, caches)
            fed = idx.shape[1]
        else:
            logits = model.logits(idx[:, -block_size:])
        logits = logits[:, -1, :] / temperature
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits[logits < kth] = -float("inf")
        idx = torch.cat([idx, torch.multinomial(torch.softmax(logits, dim=-1), 1)], dim=1)
    return idx


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON: the trainer's config fields (TrainConfig's names)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sample-tokens", type=int, default=300)
    args = parser.parse_args()
    cfg = json.loads(args.config)
    torch.manual_seed(cfg["seed"])
    with open(cfg["data"], encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(ids))
    splits = {"train": ids[:n], "val": ids[n:]}
    model = TorchGPT(len(chars), cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["dropout"],
                     cfg["bias"]).to(cfg["device"])
    optimizer = model.configure_optimizers(cfg["weight_decay"], cfg["learning_rate"], (cfg["beta1"], cfg["beta2"]))
    os.makedirs(args.out_dir, exist_ok=True)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters; vocabulary {len(chars)}")
    best_val, losses, t0 = math.inf, None, time.time()
    for iter_num in range(cfg["max_iters"] + 1):
        if iter_num % cfg["eval_interval"] == 0 or iter_num == cfg["max_iters"]:
            losses = estimate_loss(model, splits, cfg)
            best_val = min(best_val, losses["val"])
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": iter_num,
                        "best_val_loss": best_val, "config": cfg}, os.path.join(args.out_dir, "ckpt.pt"))
        if iter_num == cfg["max_iters"]:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, iter_num)
        for _ in range(cfg["grad_accum"]):
            _, loss = model(*get_batch(splits["train"], cfg))
            (loss / cfg["grad_accum"]).backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (iter_num + 1) % cfg["log_interval"] == 0:
            t1 = time.time()
            print(f"iter {iter_num + 1}: loss {loss.item():.4f}, time {(t1 - t0) * 1e3 / cfg['log_interval']:.1f}ms")
            t0 = t1
    print(f"finished at iteration {cfg['max_iters']}: val loss {losses['val']:.4f}")
    if args.sample_tokens > 0:
        out = sample(model, torch.tensor([[stoi["\n"]]], device=cfg["device"]), args.sample_tokens,
                     cfg["block_size"])
        print("---- sample ----\n" + "".join(chars[i] for i in out[0].tolist()))


if __name__ == "__main__":
    main()
