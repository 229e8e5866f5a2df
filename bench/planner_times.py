"""Wall time of whole ``tad profile-memory`` commands (imports, worker processes and exit included), as a
user waits for them (issue 21: at most 15 s for any shipped preset, suggestions included, on 2 cores).

    python bench/planner_times.py                        # the issue's commands, 3 runs each
    python bench/planner_times.py --old /path/to/checkout  # the same, alternating with another checkout's code
    python bench/planner_times.py --all-presets --runs 1   # every shipped preset, six modes + suggestions
    python bench/planner_times.py --all-presets --runs 1 --mode preset   # every preset, its own mode + suggestions

Each command runs as ``python -m tadcli profile-memory ...`` in a fresh process; with ``--old`` the other
checkout's ``tadcli`` is put first on ``PYTHONPATH`` and the two alternate, so that both see the same load. The
load average is printed beside each time: on a shared machine every time is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    ("giant-1536 six modes, fits (the issue's command)", ["--preset", "giant-1536", "--gpu", "A100-40GB"]),
    ("giant-1536 its own mode + suggestions", ["--preset", "giant-1536", "--mode", "preset", "--gpu", "RTX-4090"]),
    ("giant-1536 six modes + suggestions", ["--preset", "giant-1536", "--gpu", "RTX-4090"]),
)


def shipped_presets() -> list[str]:
    return sorted(path.stem for path in (ROOT / "presets").glob("*.yaml"))


def timed(arguments: list[str], code: Path) -> tuple[float, str]:
    """Seconds the command took with the ``tadcli`` of ``code``, and its last line (the suggestions' count or
    the table's end)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tadcli", "profile-memory", *arguments], env=env,
                          capture_output=True, text=True, cwd="/")
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    suggestions = done.stdout.count("  [--")
    return seconds, f"{suggestions} suggestions" if suggestions else "no suggestions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old", type=Path, help="another checkout, timed alternately with this one")
    parser.add_argument("--all-presets", action="store_true", help="every shipped preset: six modes + suggestions")
    parser.add_argument("--gpu", default="RTX-4090", help="the GPU for --all-presets")
    parser.add_argument("--mode", help="the mode for --all-presets (default: the six-mode table)")
    args = parser.parse_args()
    mode = ["--mode", args.mode] if args.mode else []
    commands = (
        [(name, ["--preset", name, "--gpu", args.gpu, *mode]) for name in shipped_presets()]
        if args.all_presets else list(COMMANDS)
    )
    codes = [("new", ROOT)] + ([("old", args.old.resolve())] if args.old else [])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print("| command | " + " | ".join(f"{label}: runs (s)" for label, _ in codes) + " | load average | result |")
    print("|---|" + "---|" * len(codes) + "---|---|")
    for title, arguments in commands:
        times: dict[str, list[float]] = {label: [] for label, _ in codes}
        loads, result = [], ""
        for _ in range(args.runs):
            for label, code in codes:
                loads.append(os.getloadavg()[0])
                seconds, result = timed(arguments, code)
                times[label].append(seconds)
        cells = " | ".join(", ".join(f"{t:.1f}" for t in times[label]) for label, _ in codes)
        print(f"| {title} (`{' '.join(arguments)}`) | {cells} | {min(loads):.1f}-{max(loads):.1f} | {result} |",
              flush=True)


if __name__ == "__main__":
    main()
