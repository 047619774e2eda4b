"""PyTorch's nanoGPT-shaped GPT trained beside a tensorlite run: its val loss at each of that run's evaluations.

    python examples/train_char_gpt.py --device cuda --preset gpu --out-dir out/run    # stopped with Ctrl-C, say
    python benchmarks/val_loss_vs_torch.py --run-dir out/run --plot val_loss.png

The run's configuration comes from its checkpoint and its evaluations from its log.jsonl. The run's Trainer is
built afresh on the CPU, which gives the weights the run started from, its dataset and its batch generator; the
weights are copied into benchmarks/torch_reference.TorchGPT, which then trains with torch.optim.AdamW on the
same batches, with the same learning-rate schedule and clipping, up to the run's last evaluation, and is scored
by the Trainer's own evaluation (the same batches, the same seeds) at the run's evaluation iterations. So the
two columns differ only by the frameworks' arithmetic and their dropout masks (each draws its own): at
iteration 0 they score the same weights, and their difference there checks the comparison itself.

Each evaluation is printed (and the plot redrawn) as it comes, so Ctrl-C, or gpu_checks.sh's SIGINT at its time
limit, stops it with the rows it has (exit status 130).
"""
import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import tensorlite as tl  # noqa: E402
from cli_common import run_cli  # noqa: E402
from gpt import TrainConfig, Trainer, load_checkpoint  # noqa: E402
from gpt.checkpoint import CHECKPOINT  # noqa: E402
from gpt.outdir import LOG  # noqa: E402
from gpt.train import lr_at  # noqa: E402
from tensorlite.parallel import ShardedStep  # noqa: E402

# gpt/model.py's parameter names -> torch_reference.py's (the first match of each name is replaced)
RENAMES = (("transformer.", ""), (".attn.c_attn.", ".c_attn."), (".attn.c_proj.", ".attn_proj."),
           (".mlp.c_fc.", ".c_fc."), (".mlp.c_proj.", ".mlp_proj."))


def load_run(run_dir):
    """(TrainConfig of the run, {iteration: its evaluation record from log.jsonl}, its logged ms/iter)."""
    _, _, meta = load_checkpoint(os.path.join(run_dir, CHECKPOINT))
    with open(os.path.join(run_dir, LOG), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    evaluations = {r["iter"]: r for r in records if "val_loss" in r}
    if not evaluations:
        raise ValueError(f"the run in {run_dir} has no evaluation in its {LOG} yet: nothing to compare")
    return TrainConfig(**meta["train_config"]), evaluations, [r["ms_per_iter"] for r in records if "ms_per_iter" in r]


def torch_copy(model, device):
    """A TorchGPT holding a copy of the tensorlite GPT's weights."""
    import torch
    from torch_reference import TorchGPT
    c = model.config
    if c.pos_encoding != "learned":
        raise ValueError(f"TorchGPT has learned positions only; the run used pos_encoding={c.pos_encoding!r}")
    state = {}
    for name, array in model.state_dict().items():
        for old, new in RENAMES:
            name = name.replace(old, new, 1)
        state[name] = torch.from_numpy(array)
    state["lm_head.weight"] = state["wte.weight"]     # tied: tensorlite names the shared matrix once
    copy = TorchGPT(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, c.dropout, c.bias)
    copy.load_state_dict(state)
    return copy.to(device)


class AsTensorliteModel:
    """PyTorch's model behind the calls gpt.train.evaluate makes of a model (training, eval(), train(mode),
    config, model(x) -> (logits, None) as a tensorlite Tensor), so that the Trainer's own evaluation, with its
    batches and seeds, scores it."""

    def __init__(self, module, device, config):
        self.module, self.device, self.config = module, device, config

    @property
    def training(self):
        return self.module.training

    def train(self, mode=True):
        self.module.train(mode)

    def eval(self):
        self.module.eval()

    def __call__(self, x):
        import torch
        with torch.no_grad():
            logits = self.module.logits(torch.from_numpy(x.numpy()).to(self.device))
        return tl.tensor(logits.cpu().numpy()), None


class SideBySide:
    """The rows so far: printed as they come, drawn into the plot, and summed up at the end."""

    def __init__(self, tensorlite_evals, plot_path):
        self.tensorlite, self.plot_path = tensorlite_evals, plot_path
        self.rows = []

    def add(self, it, torch_losses):
        row = {"iter": it, "tensorlite": self.tensorlite[it]["val_loss"], "pytorch": torch_losses["val"]["loss"]}
        self.rows.append(row)
        print(f"iter {it}: val loss tensorlite {row['tensorlite']:.4f}, pytorch {row['pytorch']:.4f} "
              f"(difference {row['tensorlite'] - row['pytorch']:+.2e})", flush=True)
        if self.plot_path:
            self.plot()

    def plot(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        its = sorted(self.tensorlite)
        ax.plot(its, [self.tensorlite[i]["val_loss"] for i in its], "o-", label="tensorlite")
        ax.plot([r["iter"] for r in self.rows], [r["pytorch"] for r in self.rows], "s--", label="PyTorch (same start)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("val loss (nats)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)

    def summary(self):
        if not self.rows:
            return "no evaluation side by side"
        first, last = self.rows[0], self.rows[-1]
        return (f"val loss at iteration {last['iter']}: tensorlite {last['tensorlite']:.4f}, pytorch "
                f"{last['pytorch']:.4f} ({len(self.rows)} evaluations side by side; at iteration {first['iter']} "
                f"they differ by {abs(first['tensorlite'] - first['pytorch']):.2e})")


def train_torch(trainer, model, device, eval_at, side_by_side):
    """Train `model` as trainer would (schedule, grad_accum, clipping, batches) and evaluate it at each
    iteration of eval_at; returns the milliseconds per training iteration between evaluations."""
    import torch
    cfg = trainer.cfg
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    evaluated = AsTensorliteModel(model, device, trainer.model.config)
    trainer.model = evaluated      # trainer.estimate_loss() scores whatever trainer.model is, at trainer.iter_num,
    trainer.sharded = ShardedStep(evaluated, 1)   # through its ShardedStep
    ms_per_iter, segment, last = [], None, max(eval_at)
    for it in range(last + 1):
        if it in eval_at:
            if segment is not None:
                sync()
                ms_per_iter.append((time.perf_counter() - segment[0]) / (it - segment[1]) * 1e3)
            trainer.iter_num = it
            side_by_side.add(it, trainer.estimate_loss())
            segment = (time.perf_counter(), it)
        if it == last:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, it)
        for _ in range(cfg.grad_accum):
            x, y = trainer.dataset.get_batch("train", cfg.batch_size, trainer.batch_rng)
            _, loss = model(*(torch.from_numpy(t.numpy()).to(device) for t in (x, y)))
            (loss / cfg.grad_accum).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return ms_per_iter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="the tensorlite run's --out-dir (ckpt.npz, log.jsonl)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where PyTorch trains")
    parser.add_argument("--plot", help="draw both val losses into this PNG")
    args = parser.parse_args(argv)
    import torch     # here, not at the top: --help works without PyTorch
    cfg, tensorlite_evals, tensorlite_ms = load_run(args.run_dir)
    print(f"the run in {args.run_dir}: {len(tensorlite_evals)} evaluations, the last at iteration "
          f"{max(tensorlite_evals)}; PyTorch {torch.__version__} trains the same model on {args.device}", flush=True)
    side_by_side = SideBySide(tensorlite_evals, args.plot)
    status = 0
    with tempfile.TemporaryDirectory() as scratch:    # the fresh Trainer's out_dir: it writes nothing there
        try:
            trainer = Trainer(dataclasses.replace(cfg, device="cpu", out_dir=scratch, cpu_shards=1))
            torch_ms = train_torch(trainer, torch_copy(trainer.model, args.device), args.device,
                                   set(tensorlite_evals), side_by_side)
            if torch_ms and tensorlite_ms:
                print(f"ms/iter (median): tensorlite {statistics.median(tensorlite_ms):.1f} (its log intervals), "
                      f"pytorch {statistics.median(torch_ms):.1f} (between evaluations)")
        except KeyboardInterrupt:
            print("interrupted: the evaluations so far")
            status = 130
    print(side_by_side.summary())
    return status


if __name__ == "__main__":
    sys.exit(run_cli(main))     # a missing or unfit run: one line, exit 2, as the examples' commands
