#!/usr/bin/env python3
"""Writes the same layered DAG of trivial jobs twice: as andon.yaml and as a Makefile.

    python3 gen_dag.py OUT_DIR [--jobs 200] [--width 8]

Layer 0 has `needs: []`; job i of layer L > 0 needs job i of layer L-1 and,
when (i + L) is even, also job (i + 1) mod width of layer L-1. So every job
needs 1 or 2 jobs of the previous layer, at most `width` jobs are ever ready
at once, and the DAG is deterministic. Every job runs `true`.
"""
import argparse
import os


def name(layer: int, i: int) -> str:
    return f"j{layer:03d}-{i}"


def dag(jobs: int, width: int):
    """[(name, [needs])] in layer order."""
    out = []
    for n in range(jobs):
        layer, i = divmod(n, width)
        if layer == 0:
            needs = []
        else:
            needs = [name(layer - 1, i)]
            partner = (i + 1) % width
            if (i + layer) % 2 == 0 and partner != i:
                needs.append(name(layer - 1, partner))
            # The previous layer may be partial when jobs % width != 0.
            needs = [x for x in needs if int(x[1:4]) * width + int(x.split("-")[1]) < jobs]
        out.append((name(layer, i), needs))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--width", type=int, default=8)
    a = p.parse_args()
    graph = dag(a.jobs, a.width)
    os.makedirs(a.out, exist_ok=True)

    y = ["project: dag", "trunk: main", "", "pipeline:", "  stages:", "    - name: dag", "      jobs:"]
    for job, needs in graph:
        y.append(f"        - name: {job}")
        y.append(f"          needs: [{', '.join(needs)}]")
        y.append('          run: "true"')
    with open(os.path.join(a.out, "andon.yaml"), "w") as f:
        f.write("\n".join(y) + "\n")

    m = [".PHONY: all " + " ".join(j for j, _ in graph), "", "all: " + " ".join(j for j, _ in graph), ""]
    for job, needs in graph:
        m.append(f"{job}: {' '.join(needs)}".rstrip())
        m.append("\t@true")
    with open(os.path.join(a.out, "Makefile"), "w") as f:
        f.write("\n".join(m) + "\n")


if __name__ == "__main__":
    main()
