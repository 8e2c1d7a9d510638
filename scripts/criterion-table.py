#!/usr/bin/env python3
"""Prints a Markdown table (benchmark, median) from criterion's saved estimates under target/criterion."""
import json, os, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
rows = []
for dirpath, dirs, files in os.walk(root):
    if os.path.basename(dirpath) == "new" and "estimates.json" in files:
        bench = os.path.relpath(os.path.dirname(dirpath), root)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            med = json.load(f)["median"]["point_estimate"]
        rows.append((bench, med))
def fmt(ns):
    return f"{ns:.1f} ns" if ns < 1e3 else f"{ns/1e3:.2f} µs" if ns < 1e6 else f"{ns/1e6:.2f} ms"
print("| benchmark | median |\n|---|---|")
for b, m in sorted(rows):
    print(f"| {b} | {fmt(m)} |")
