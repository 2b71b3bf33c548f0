"""OpenMP's wait policy: why the package asks for OMP_WAIT_POLICY=PASSIVE.

torch's OpenMP threads spin while they wait for each other. When another torch process wants the same
cores (a second notebook, a test runner beside a kernel), spinning threads hold the cores the others wait
for: a pass took 2x (SmolLM2) to 100x (a tiny model) longer. Sleeping ("PASSIVE") costs about 20% on a
quiet machine for one pass alone, nothing beside a second thread (the widget's background check beside
its answer). The policy is read once, when torch starts, so each policy runs in a child process; within
each child the baseline is the same forward pass with nothing else running, then the same pass while a
second thread runs forward passes too. --rival runs another torch process (same policy) meanwhile.

    python benchmarks/bench_omp.py [--model smollm2|tiny] [--repeats 5] [--threads 2] [--rival]
        [--policies ACTIVE,PASSIVE,GOMP_SPINCOUNT=10000]

Prints, per policy, the median seconds of a pass alone and beside a second thread, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, threading, time
import torch
import headpursuit_widget as hp

model_name, repeats, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
if model_name == "tiny":
    import transformers as tf
    config = tf.LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2)
    module = tf.AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(0, 512, (16, 12))
else:
    module = hp.load_model(model_name).module
    ids = torch.randint(0, 1000, (16, 12))

def one_pass():
    with torch.inference_mode():
        module(input_ids=ids, logits_to_keep=1, use_cache=False)

def timed():
    t = time.perf_counter()
    one_pass()
    return time.perf_counter() - t

one_pass()
alone = statistics.median(timed() for _ in range(repeats))
stop = threading.Event()
def busy():
    while not stop.is_set():
        one_pass()
other = threading.Thread(target=busy)
other.start()
try:
    beside = statistics.median(timed() for _ in range(repeats))
finally:
    stop.set()
    other.join()
print(json.dumps({"alone_s": alone, "beside_s": beside}))
"""


RIVAL = r"""
import torch
torch.set_num_threads(2)
x, w = torch.randn(64, 256), torch.randn(256, 256)
while True:
    x = torch.tanh(x @ w)
"""


def run(policy: str, model: str, repeats: int, threads: int, rival: bool) -> dict:
    """policy: "ACTIVE", "PASSIVE", or "GOMP_SPINCOUNT=N" (libgomp's default policy, spinning N times).
    rival: another torch process with the same policy runs small matrix products meanwhile."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    name, _, value = policy.partition("=")
    env.update({name: value} if value else {"OMP_WAIT_POLICY": policy})
    other = subprocess.Popen([sys.executable, "-c", RIVAL], env=env) if rival else None
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, model, str(repeats), str(threads)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if other is not None:
            other.kill()
            other.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="a shipped model name, or 'tiny' (random, no download)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--policies", default="ACTIVE,PASSIVE", help="comma-separated; GOMP_SPINCOUNT=N too")
    parser.add_argument("--rival", action="store_true", help="another torch process runs meanwhile")
    args = parser.parse_args()
    for policy in args.policies.split(","):
        r = run(policy, args.model, args.repeats, args.threads, args.rival)
        label = f"{policy} {args.model}" + (" (rival process)" if args.rival else "")
        print(
            f"{label:40s} a pass alone {r['alone_s'] * 1e3:8.1f} ms, beside a second thread "
            f"{r['beside_s'] * 1e3:8.1f} ms ({r['beside_s'] / r['alone_s']:.1f}x)"
        )


if __name__ == "__main__":
    main()
