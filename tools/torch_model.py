#!/usr/bin/env python3
"""The PyTorch peer of benchmarks/bm_train_step.cpp: the same model and the same training step, written as
one would write it for speed in plain PyTorch 1.13 (Debian python3-torch; run with /usr/bin/python3).

Model (docs/model.md, the contract ballast's transformer implements), for the two policy sets the benchmark
runs:
  paper_default  pre-norm LayerNorm with scale and no bias (eps 1e-6), no biases anywhere, RoPE (rotate-half,
                 base 10000) after per-head qk-LayerNorm (scale [dh] shared by the heads, no bias), attention
                 scale 1/sqrt(dh), GELU (tanh form), MLP 4d, untied head, loss = CE + 1e-4 * mean(log Z^2)
  gpt2_like      LayerNorm with scale and bias, learned positions, biases on qkv/out/up/down, no qk control,
                 GELU (tanh form), head tied to the embedding, plain cross-entropy
Step (trainer.hpp): zero the gradients, forward, backward, global gradient-norm clipping at 1.0
(torch.nn.utils.clip_grad_norm_), AdamW (beta 0.9/0.95, eps 1e-8, lr 1e-3; torch.optim.AdamW, whose decay
is the coupled form; the work per element is the same as ballast's independent decay). Batches are random
windows of a random-token corpus drawn with torch ops, as the trainer draws its windows.

Threads: torch.set_num_threads(t) here; OPENBLAS_NUM_THREADS=t and (at 2 threads) OMP_WAIT_POLICY=passive must
be in the environment before torch is imported (tools/compare_pytorch.py sets them; see
docs/performance.md, "Running PyTorch fairly").

Usage:
  torch_model.py run --config P2 --policy paper_default --threads 2 [--warmup 2] [--steps 8]
      prints one JSON line: tokens_per_s, step_s (per measured step), params, loss, ...
  torch_model.py params [--config P1,P2] [--policy paper_default,gpt2_like]
      prints the parameter count of each model (built on the meta device: no memory, no init)
"""
import argparse
import json
import math
import os
import sys
import time

CONFIGS = {
    # name: vocab, d_model, n_layers, n_heads, context, batch, real vocab (token ids drawn below it)
    "P1": dict(vocab=256, d=128, layers=2, heads=2, context=64, batch=16, real_vocab=256),
    "P2": dict(vocab=256, d=256, layers=4, heads=4, context=128, batch=16, real_vocab=256),
    "P3": dict(vocab=256, d=512, layers=8, heads=8, context=256, batch=8, real_vocab=256),
    "G124": dict(vocab=50304, d=768, layers=12, heads=12, context=64, batch=4, real_vocab=50257),
}
POLICIES = ("paper_default", "gpt2_like")


def step_flops(c):
    """Model FLOPs of one training step: tokens * (6 * (12 L d^2 + d V) + 12 L T d) (as the benchmark)."""
    tokens = c["batch"] * c["context"]
    L, d, V, T = c["layers"], c["d"], c["vocab"], c["context"]
    return tokens * (6 * (12 * L * d * d + d * V) + 12 * L * T * d)


def build(torch, cfg, policy, device="cpu"):
    """The model as an nn.Module (parameters initialised as docs/model.md says unless on 'meta')."""
    nn = torch.nn
    F = torch.nn.functional
    gpt2 = policy == "gpt2_like"
    V, d, L, H, C = cfg["vocab"], cfg["d"], cfg["layers"], cfg["heads"], cfg["context"]
    dh = d // H
    eps = 1e-6
    zcoef = 0.0 if gpt2 else 1e-4
    kw = dict(device=device, dtype=torch.float32)

    def param(*shape):
        return nn.Parameter(torch.empty(*shape, **kw))

    class Norm(nn.Module):
        def __init__(self, width, bias):
            super().__init__()
            self.width = width
            self.scale = param(width)
            self.bias = param(width) if bias else None

        def forward(self, x):
            return F.layer_norm(x, (self.width,), self.scale, self.bias, eps)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn_norm = Norm(d, gpt2)
            self.qkv = nn.Linear(d, 3 * d, bias=gpt2, **kw)
            if not gpt2:
                self.q_norm = Norm(dh, False)
                self.k_norm = Norm(dh, False)
            self.out = nn.Linear(d, d, bias=gpt2, **kw)
            self.mlp_norm = Norm(d, gpt2)
            self.up = nn.Linear(d, 4 * d, bias=gpt2, **kw)
            self.down = nn.Linear(4 * d, d, bias=gpt2, **kw)

        def forward(self, x, rope, mask):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.attn_norm(x)).view(B, T, 3, H, dh).unbind(2)   # each (B, T, H, dh)
            if not gpt2:
                q, k = self.q_norm(q), self.k_norm(k)
                cos, sin = rope
                q = q * cos + torch.cat((-q[..., dh // 2:], q[..., : dh // 2]), -1) * sin
                k = k * cos + torch.cat((-k[..., dh // 2:], k[..., : dh // 2]), -1) * sin
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)    # (B, H, T, dh)
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
            att = torch.softmax(att.masked_fill(mask[:T, :T], float("-inf")), dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, d)
            x = x + self.out(o)
            return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = param(V, d)
            self.pos_embed = param(C, d) if gpt2 else None
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.final_norm = Norm(d, gpt2)
            self.head = None if gpt2 else param(V, d)
            self.register_buffer("mask", torch.ones(C, C, dtype=torch.bool, device=device).triu(1), False)
            if not gpt2:
                # RoPE tables in the (T, 1, dh) layout of q/k (B, T, H, dh): rotate-half, theta_i = base^(-2i/dh)
                i = torch.arange(dh // 2, dtype=torch.float64)
                ang = torch.arange(C, dtype=torch.float64)[:, None] * torch.pow(10000.0, -2.0 * i / dh)[None]
                ang = torch.cat((ang, ang), -1)[:, None, :]
                self.register_buffer("cos", ang.cos().float().to(device), False)
                self.register_buffer("sin", ang.sin().float().to(device), False)

        def forward(self, tokens, targets):
            B, T = tokens.shape
            x = F.embedding(tokens, self.embed)
            if gpt2:
                x = x + self.pos_embed[:T]
            rope = None if gpt2 else (self.cos[:T], self.sin[:T])
            for blk in self.blocks:
                x = blk(x, rope, self.mask)
            y = F.linear(self.final_norm(x), self.embed if gpt2 else self.head).view(B * T, V)
            t = targets.reshape(-1)
            if zcoef == 0.0:
                return F.cross_entropy(y, t)
            log_z = torch.logsumexp(y, dim=-1)
            return (log_z - y.gather(1, t[:, None])[:, 0]).mean() + zcoef * (log_z * log_z).mean()

    model = Model()
    if device != "meta":
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("scale"):
                    p.fill_(1.0)
                elif p.dim() == 1:              # biases (LayerNorm and linear)
                    p.zero_()
                elif name in ("embed", "pos_embed"):
                    p.normal_(0.0, 1.0 / math.sqrt(d))
                else:                           # matrices and the head: truncated normal, std 1/sqrt(fan_in)
                    # +-2 sigma truncation, rescaled so the std is 1/sqrt(fan_in) (0.8796...: the std of a
                    # standard normal truncated to [-2, 2])
                    sigma = 1.0 / math.sqrt(p.shape[1]) / 0.8796256610342398
                    nn.init.trunc_normal_(p, 0.0, sigma, -2 * sigma, 2 * sigma)
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def run(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    cfg = CONFIGS[args.config]
    model = build(torch, cfg, args.policy)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4,
                            foreach=args.foreach)
    B, T = cfg["batch"], cfg["context"]
    corpus = torch.randint(0, cfg["real_vocab"], (1 << 20,), dtype=torch.int64)
    offsets = torch.arange(T + 1)

    def step():
        starts = torch.randint(0, corpus.numel() - T - 1, (B,))
        win = corpus[starts[:, None] + offsets]
        opt.zero_grad(set_to_none=True)
        loss = model(win[:, :-1], win[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    times = []
    loss = None
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    out = {
        "impl": "torch", "config": args.config, "policy": args.policy, "threads": args.threads,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "foreach": args.foreach,
        "steps": args.steps, "warmup": args.warmup, "step_s": times,
        "tokens_per_s": args.steps * B * T / total, "gflops": args.steps * step_flops(cfg) / total / 1e9,
        "params": count_params(model), "loss": float(loss),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
    }
    print(json.dumps(out))


def params_only(args):
    import torch
    for c in args.config.split(","):
        for p in args.policy.split(","):
            m = build(torch, CONFIGS[c], p, device="meta")
            print(json.dumps({"config": c, "policy": p, "params": count_params(m)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="time training steps, print one JSON line")
    r.add_argument("--config", choices=sorted(CONFIGS), required=True)
    r.add_argument("--policy", choices=POLICIES, default="paper_default")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--warmup", type=int, default=2)
    r.add_argument("--steps", type=int, default=5)
    r.add_argument("--foreach", type=int, choices=(0, 1), default=1,
                   help="AdamW foreach implementation (1, the faster here) or the per-tensor loop (0)")
    p = sub.add_parser("params", help="print parameter counts (no allocation)")
    p.add_argument("--config", default=",".join(CONFIGS))
    p.add_argument("--policy", default=",".join(POLICIES))
    args = ap.parse_args()
    if args.cmd == "run":
        if args.threads < 1 or args.steps < 1 or args.warmup < 0:
            print("torch_model.py: --threads and --steps must be >= 1, --warmup >= 0", file=sys.stderr)
            return 2
        args.foreach = bool(args.foreach)
        run(args)
    else:
        for c in args.config.split(","):
            if c not in CONFIGS:
                print(f"torch_model.py: unknown config '{c}' (known: {', '.join(CONFIGS)})", file=sys.stderr)
                return 2
        for p in args.policy.split(","):
            if p not in POLICIES:
                print(f"torch_model.py: unknown policy '{p}' (known: {', '.join(POLICIES)})", file=sys.stderr)
                return 2
        params_only(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
