"""Train a two-layer MLP on two interleaved spirals with nothing but tensorlite's core ops.

The smallest end-to-end demonstration of the engine: forward with matmul/tanh, a softmax cross-entropy written
with primitive ops, backward, and a hand-written SGD step. Prints the loss as it falls and the final accuracy.
    python examples/train_mlp.py --steps 1000
"""
import argparse

import numpy as np

import tensorlite as tl


def spirals(n_per_class, rng):
    """Two spirals in the plane, labels 0 and 1: not linearly separable, so the hidden layer has work to do."""
    t = np.sqrt(rng.random(n_per_class)) * 3 * np.pi
    arms = [np.stack([t * np.cos(t + k * np.pi), t * np.sin(t + k * np.pi)], axis=1) / (3 * np.pi) for k in (0, 1)]
    x = np.concatenate(arms) + rng.normal(scale=0.02, size=(2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return x.astype(np.float32), y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tl.manual_seed(args.seed)
    x_np, y_np = spirals(200, np.random.default_rng(args.seed))
    x, onehot = tl.tensor(x_np), tl.tensor(np.eye(2, dtype=np.float32)[y_np])
    w1 = (tl.randn(2, args.hidden) * 4.0).detach().requires_grad_()
    b1 = tl.zeros(args.hidden, requires_grad=True)
    w2 = (tl.randn(args.hidden, 2) * (1 / args.hidden ** 0.5)).detach().requires_grad_()
    b2 = tl.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]

    for step in range(args.steps + 1):
        logits = (x @ w1 + b1).tanh() @ w2 + b2                        # (N, 2)
        shifted = logits - logits.max(dim=1, keepdim=True).values.detach()   # stable log-softmax
        log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
        loss = -(log_probs * onehot).sum(dim=1).mean()
        for p in params:
            p.zero_grad()
        loss.backward()
        with tl.no_grad():
            for p in params:
                p -= args.lr * p.grad
        if step % 100 == 0:
            accuracy = (logits.numpy().argmax(axis=1) == y_np).mean()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
