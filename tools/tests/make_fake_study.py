#!/usr/bin/python3
"""Write a synthetic but realistic LR-sensitivity study directory (input for tools/plot_study.py).

Usage: tools/tests/make_fake_study.py OUT_DIR

Layout written (the format tools/plot_study.py reads):
  OUT_DIR/results.jsonl      study line, then one run line per finished run in shuffled order, then one
                             torn (truncated, newline-less) line, as left by a writer killed mid-line
  OUT_DIR/summary.json       per-group LR sensitivity, computed here independently of plot_study.py
  OUT_DIR/runs/<key>.jsonl   per-run metrics: header, 20 step lines, eval lines every 50 steps, end line

Content: 2 policy sets (paper_default = qk-layernorm on; no_qk_norm = qk-layernorm off) x 2 sizes
(d64_L2, d128_L4) x the paper's 7-point LR grid, byte-level vocabulary (l0 ~ ln 256 ~ 5.55 nats).
no_qk_norm at d128_L4 diverges at LR 1e-1 and 3e-1 with its max attention logit blowing up first;
no_qk_norm at d64_L2 is degraded but finite at 3e-1. One run line has no diagnostics and one has them
partially, as the schema allows. Deterministic (fixed seed). Standard library only.
"""
import json
import math
import os
import random
import sys

LRS = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
SIZES = [("d64_L2", 64, 2), ("d128_L4", 128, 4)]
POLICY_SETS = ["paper_default", "no_qk_norm"]
STEPS = 200
LOG_EVERY = 10
EVAL_EVERY = 50
WARMUP = 10
VOCAB = 256


def params_of(d, n_layers):
    return 12 * d * d * n_layers  # non-embedding, bias-free block: 4d^2 attention + 8d^2 MLP


def lr_key(lr):
    return f"{lr:.0e}".replace("e-0", "e-")


def final_loss(policy, d, lr, rng):
    """U-shaped final validation loss in log10(LR); larger model: lower floor, narrower valley."""
    big = d >= 128
    floor = 2.28 if big else 2.52
    opt = -2.0 if big else -1.8  # log10 of the optimal LR
    curv = 0.34 if big else 0.26
    x = math.log10(lr) - opt
    loss = floor + curv * x * x + rng.uniform(-0.01, 0.01)
    if policy == "no_qk_norm" and lr >= 3e-2:
        # without qk-layernorm the high-LR end degrades sharply (attention entropy collapse)
        loss += (0.9 if big else 0.45) * math.log10(lr / 1e-2)
    return loss


def diverges(policy, d, lr):
    return policy == "no_qk_norm" and d >= 128 and lr >= 1e-1


def attn_logit(run, step):
    """Max attention logit at `step`: ~4 -> ~7 with qk-layernorm; without it, growth with LR that stays
    below the paper's 1e4 threshold for surviving runs and crosses it just before divergence."""
    lr = run["lr"]
    frac = step / STEPS
    if run["policy_set"] != "no_qk_norm" or lr <= 1e-3:
        return 4.0 * math.exp(0.55 * frac)
    if run["diverged"]:
        # exponential growth from 4 to 3e4 at the divergence step
        return 4.0 * math.exp(math.log(3e4 / 4.0) * step / run["diverged_step"])
    end = 4.0 * (lr / 1e-3) ** (1.3 if run["d_model"] >= 128 else 1.15)  # 3e-1 at d64: ~2.8e3
    return 4.0 * (end / 4.0) ** frac


def schedule(step, lr):
    if step < WARMUP:
        return lr * step / WARMUP
    t = (step - WARMUP) / (STEPS - WARMUP)
    return 1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * t))


def write_metrics(path, run, rng):
    """Per-run metrics log; diverged runs get exploding loss and attention logits, then nulls."""
    l0, final = run["l0"], run["final_val_loss"]
    div_step = run["diverged_step"] if run["diverged"] else None
    lines = [{"type": "header", "key": run["key"], "policy_set": run["policy_set"], "size": run["size"],
              "params": run["params"], "lr": run["lr"], "steps": STEPS, "warmup": WARMUP, "vocab": VOCAB}]
    target = final if final is not None else 2.6
    for step in range(LOG_EVERY, STEPS + 1, LOG_EVERY):
        frac = step / STEPS
        loss = target + (l0 - target) * math.exp(-5.0 * frac) + rng.uniform(-0.03, 0.03)
        logit = attn_logit(run, step) * (1 + rng.uniform(-0.05, 0.05))
        log_z = -0.05 - 0.6 * frac * math.log10(run["lr"] / 1e-4) / 3.5
        rec = {"type": "step", "step": step, "lr": schedule(step, run["lr"]), "loss": None, "ce": None,
               "zloss": None, "grad_norm": None, "max_attn_logit": logit, "log_z_mean": log_z}
        if div_step is not None and step > div_step:
            rec["max_attn_logit"] = None  # non-finite after divergence
            rec["log_z_mean"] = None
        else:
            if div_step is not None and step > div_step - 4 * LOG_EVERY:
                loss = l0 + 0.8 * (step - (div_step - 4 * LOG_EVERY)) / LOG_EVERY  # blow-up before NaN
            zl = 1e-4 * log_z * log_z
            rec.update(loss=loss + zl, ce=loss, zloss=zl, grad_norm=0.4 + rng.uniform(0, 0.3))
        lines.append(rec)
        if step % EVAL_EVERY == 0:
            if div_step is not None and step > div_step:
                lines.append({"type": "eval", "step": step, "val_loss": None, "val_ce": None})
            else:
                v = loss + 0.02
                lines.append({"type": "eval", "step": step, "val_loss": v + 1e-4, "val_ce": v})
    lines.append({"type": "end", "step": STEPS if div_step is None else div_step,
                  "final_val_loss": final, "diverged": run["diverged"], "reason": run["reason"]})
    with open(path, "w") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")


def sensitivity(runs):
    """Independent re-implementation of the paper's LR sensitivity (diverged runs count as l0)."""
    l0 = sum(r["l0"] for r in runs) / len(runs)
    capped = [l0 if r["diverged"] else min(r["final_val_loss"], l0) for r in runs]
    best = min(capped)
    return sum(c - best for c in capped) / len(capped), best, l0


def main(argv):
    if len(argv) != 2:
        print("usage: make_fake_study.py OUT_DIR", file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    rng = random.Random(1234)
    runs = []
    for policy in POLICY_SETS:
        for size, d, n_layers in SIZES:
            for lr in LRS:
                key = f"{policy}__{size}__lr{lr_key(lr)}"
                l0 = math.log(VOCAB) + 0.01 + rng.uniform(-0.004, 0.004)
                div = diverges(policy, d, lr)
                loss = None if div else final_loss(policy, d, lr, rng)
                div_step = (60 if lr >= 3e-1 else 110) if div else 0
                run = {"type": "run", "key": key, "policy_set": policy, "optimizer": "adamw", "size": size,
                       "params": params_of(d, n_layers), "d_model": d, "n_layers": n_layers, "lr": lr,
                       "warmup": WARMUP, "weight_decay": 1e-4, "eps": 1e-8, "l0": l0,
                       "final_val_loss": loss, "best_val_loss": (loss - 0.005) if loss is not None else None,
                       "diverged": div, "diverged_step": div_step,
                       "reason": "non-finite loss" if div else "", "wall_seconds": 1.5 + d / 64.0,
                       "metrics": f"runs/{key}.jsonl"}
                peak = attn_logit(run, div_step if div else STEPS)
                run["diagnostics"] = {"max_attn_logit": None if div else peak,
                                      "max_attn_logit_by_layer": [peak] + [peak * 0.5] * (n_layers - 1),
                                      "mean_log_z": -0.3, "grad_rms": 1e-3, "update_rms": 0.2}
                runs.append(run)
                write_metrics(os.path.join(out, run["metrics"]), run, rng)
    del runs[0]["diagnostics"]  # diagnostics may be missing ...
    runs[1]["diagnostics"] = {"grad_rms": 2e-3}  # ... or partial

    groups = {}
    for r in runs:
        groups.setdefault((r["policy_set"], r["size"]), []).append(r)
    summary = {"groups": []}
    for (policy, size), rs in groups.items():
        sens, best, l0 = sensitivity(rs)
        ok = [r for r in rs if not r["diverged"]]
        best_lr = min(ok, key=lambda r: r["final_val_loss"])["lr"] if ok else None
        summary["groups"].append({"policy_set": policy, "optimizer": "adamw", "size": size,
                                  "params": rs[0]["params"], "warmup": WARMUP, "weight_decay": 1e-4,
                                  "eps": 1e-8, "lr_sensitivity": sens, "best_loss": best, "l0": l0,
                                  "best_lr": best_lr, "runs": len(rs),
                                  "diverged": sum(1 for r in rs if r["diverged"])})
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)

    order = list(runs)
    rng.shuffle(order)  # lines may appear in any order
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        f.write(json.dumps({"type": "study", "name": "fake_qkln_ablation",
                            "config": {"steps": STEPS, "vocab": VOCAB, "grid": LRS, "seed": 1234}}) + "\n")
        for r in order:
            f.write(json.dumps(r) + "\n")
        torn = json.dumps(dict(order[0], key=order[0]["key"] + "__rerun"))
        f.write(torn[: len(torn) // 2])  # a writer killed mid-line: truncated, no newline
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
