"""Summarise py-spy's collapsed stacks (``py-spy record -f raw --threads``) per thread.

For each thread: its samples, the functions it was *in* (self time, the innermost frame) and the
actwatch functions below which it spent its samples (inclusive time), as shares of that thread's samples.
A thread's samples over the run's samples of the busiest thread say how busy it was: with ``--gil``
only samples that hold the GIL are recorded, so the sum over threads is the GIL's occupancy.

    python benchmarks/spy_summary.py gpu_out/spy_K64.txt [--top 12]

Example:
    >>> lines = ["thread (1): actwatch-track;a (x.py:1);b (actwatch/t.py:2) 3",
    ...          "thread (1): actwatch-track;a (x.py:1) 1"]
    >>> summary = summarise(lines)
    >>> summary["actwatch-track"].samples, summary["actwatch-track"].self_time.most_common(1)
    (4, [('b (actwatch/t.py:2)', 3)])
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"^thread \((?P<tid>\w+)\): (?P<stack>.*) (?P<count>\d+)$")


@dataclass
class ThreadProfile:
    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def summarise(lines: Iterable[str]) -> dict[str, ThreadProfile]:
    """Samples per thread name (threads of one name, e.g. a pool's, are added up)."""
    threads: dict[str, ThreadProfile] = {}
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        name, *frames = match["stack"].split(";")
        count = int(match["count"])
        profile = threads.setdefault(re.sub(r"_\d+$", "", name), ThreadProfile())
        profile.samples += count
        if frames:
            profile.self_time[frames[-1]] += count
        for frame in set(frames):
            if "actwatch/" in frame:
                profile.inclusive[frame] += count
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    threads = summarise(args.stacks.read_text(errors="replace").splitlines())
    busiest = max((t.samples for t in threads.values()), default=1)
    for name, profile in sorted(threads.items(), key=lambda kv: -kv[1].samples):
        print(f"\n## {name}: {profile.samples} samples ({100 * profile.samples / busiest:.0f}% of the busiest)")
        print("self:")
        for frame, n in profile.self_time.most_common(args.top):
            print(f"  {100 * n / profile.samples:5.1f}%  {frame}")
        print("inclusive (actwatch):")
        for frame, n in profile.inclusive.most_common(args.top):
            print(f"  {100 * n / profile.samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
