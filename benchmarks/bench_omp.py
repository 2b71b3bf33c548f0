"""OpenMP's wait policy: why the package asks for OMP_WAIT_POLICY=PASSIVE.

torch's OpenMP threads spin while they wait for each other ("ACTIVE"). When anything else wants the same
cores (the widget's background check beside its generation, a second process, a test runner), a spinning
thread holds a core that the thread it waits for needs, and a small forward pass can take 50x longer.
The policy is read once, when torch starts, so each policy runs in a child process; within each child
the baseline is the same forward pass with nothing else running, then the same pass while a second
thread runs forward passes too (what the widget does while it verifies and regenerates).

    python benchmarks/bench_omp.py [--model smollm2|tiny] [--repeats 5] [--threads 2]

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


def run(policy: str, model: str, repeats: int, threads: int) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(repeats), str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="a shipped model name, or 'tiny' (random, no download)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    args = parser.parse_args()
    for policy in ("ACTIVE", "PASSIVE"):
        r = run(policy, args.model, args.repeats, args.threads)
        print(
            f"{policy:8s} {args.model}: a pass alone {r['alone_s'] * 1e3:8.1f} ms, beside a second thread "
            f"{r['beside_s'] * 1e3:8.1f} ms ({r['beside_s'] / r['alone_s']:.1f}x)"
        )


if __name__ == "__main__":
    main()
