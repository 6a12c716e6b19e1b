"""Re-runs every case of this folder through PyTorch and compares with the stored numbers.

    python3 check_with_pytorch.py [folder]      # needs torch; exit status 1 on any mismatch

For each case, the inputs are parsed back from JSON, the op's PyTorch call (README.md) runs in
float32, and the output, each gradient of sum(output * grad_output) and each extra output must
agree with the file within the case's tolerance. Optimiser runs replay their five steps.
"""
import glob
import json
import os
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def tensor(t):
    dtype = torch.int64 if t.get("dtype") == "int64" else torch.float32
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def pair(v):
    return tuple(v) if isinstance(v, list) else v


def run(op, p, x):
    """The op's PyTorch call; returns (output, extra outputs)."""
    if op == "conv2d":
        return F.conv2d(x["x"], x["weight"], x.get("bias"), pair(p["stride"]), pair(p["padding"]),
                        pair(p["dilation"]), p["groups"]), {}
    if op == "max_pool2d":
        y, idx = F.max_pool2d(x["x"], pair(p["kernel_size"]), pair(p["stride"]), pair(p["padding"]),
                              pair(p["dilation"]), p["ceil_mode"], return_indices=True)
        return y, {"indices": idx}
    if op == "avg_pool2d":
        return F.avg_pool2d(x["x"], pair(p["kernel_size"]), pair(p["stride"]), pair(p["padding"]),
                            p["ceil_mode"], p["count_include_pad"], p["divisor_override"]), {}
    if op == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(x["x"], pair(p["output_size"])), {}
    if op == "local_response_norm":
        return F.local_response_norm(x["x"], p["size"], p["alpha"], p["beta"], p["k"]), {}
    if op == "batch_norm2d":
        rm, rv = x["running_mean"].clone(), x["running_var"].clone()
        y = F.batch_norm(x["x"], rm, rv, x.get("weight"), x.get("bias"), p["training"], p["momentum"],
                         p["eps"])
        return y, ({"running_mean": rm, "running_var": rv} if p["training"] else {})
    if op in ("sigmoid", "tanh"):
        return getattr(torch, op)(x["x"]), {}
    if op in ("relu", "silu"):
        return getattr(F, op)(x["x"]), {}
    if op == "leaky_relu":
        return F.leaky_relu(x["x"], p["negative_slope"]), {}
    if op == "elu":
        return F.elu(x["x"], p["alpha"]), {}
    if op in ("softmax", "log_softmax"):
        return getattr(F, op)(x["x"], dim=p["dim"]), {}
    if op == "cross_entropy":
        return F.cross_entropy(x["input"], x["target"], reduction=p["reduction"],
                               label_smoothing=p["label_smoothing"]), {}
    if op in ("nll_loss", "mse_loss"):
        return getattr(F, op)(x["input"], x["target"], reduction=p["reduction"]), {}
    if op == "linear":
        return F.linear(x["x"], x["weight"], x.get("bias")), {}
    if op in ("matmul", "add", "sub", "mul", "div"):
        return getattr(torch, op)(x["a"], x["b"]), {}
    if op in ("sum", "mean"):
        f = getattr(torch, op)
        return (f(x["x"]) if p["dim"] is None else f(x["x"], dim=p["dim"], keepdim=p["keepdim"])), {}
    if op == "max":
        if p["dim"] is None:
            return torch.amax(x["x"]), {}
        extra = {}
        if len(p["dim"]) == 1:
            extra["indices"] = torch.max(x["x"], p["dim"][0], p["keepdim"]).indices
        return torch.amax(x["x"], dim=p["dim"], keepdim=p["keepdim"]), extra
    raise ValueError(f"unknown op {op}")


def close(name, got, want, tol, problems):
    want_t = tensor(want)
    got = got.detach().to(want_t.dtype).reshape(want_t.shape)
    if want_t.dtype == torch.int64:
        ok = torch.equal(got, want_t)
    else:
        ok = bool(((got - want_t).abs() <= tol["atol"] + tol["rtol"] * want_t.abs()).all())
    if not ok:
        problems.append(name)


def check_case(c, problems):
    tol, name = c["tol"], c["name"]
    if "steps" in c:
        p = torch.nn.Parameter(tensor(c["initial_param"]))
        opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
               "adamw": torch.optim.AdamW}[c["op"]]
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in c["params"].items()}
        opt = opt([p], **params)
        for t, (g, want) in enumerate(zip(c["grads"], c["steps"])):
            p.grad = tensor(g)
            opt.step()
            close(f"{name} step {t + 1}", p, want, tol, problems)
        return
    inputs = {k: tensor(v) for k, v in c["inputs"].items()}
    for k in c.get("grads", {}):
        inputs[k].requires_grad_(True)
    out, extra = run(c["op"], c.get("params", {}), inputs)
    close(f"{name} output", out, c["output"], tol, problems)
    for k, v in c.get("extra_outputs", {}).items():
        close(f"{name} {k}", extra[k], v, tol, problems)
    if c.get("grads"):
        (out * tensor(c["grad_output"])).sum().backward()
        for k, v in c["grads"].items():
            close(f"{name} grad {k}", inputs[k].grad, v, tol, problems)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    problems, count = [], 0
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        if os.path.basename(path) == "seed_examples.json":
            continue
        for c in json.load(open(path)):
            check_case(c, problems)
            count += 1
    for p in problems:
        print("mismatch:", p)
    print(f"{count} cases, {len(problems)} mismatches")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
