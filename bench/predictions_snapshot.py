"""Every memory prediction of a set of settings, written to a file, to check that a change to the planner's
speed leaves the predictions unchanged to the byte.

    python bench/predictions_snapshot.py OUT.json              # with the code under test
    python bench/predictions_snapshot.py --compare A.json B.json

The settings: tiny, small-768 at 256 frames, giant-1536, giant-1536 at 1216 frames and anet-giant-192x4-224,
each in every adaptation mode, for CUDA (an A100-40GB, the preset's mixed precision) and for the CPU (fp32).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

SETTINGS = (("tiny", []), ("small-768", ["input.frames=256"]), ("giant-1536", []),
            ("giant-1536", ["input.frames=1216"]), ("anet-giant-192x4-224", []))


def snapshot() -> dict[str, dict]:
    from tadcli.config.loader import load_preset
    from tadcli.profiling.gpus import find_gpu
    from tadcli.profiling.modes import MODES, mode_overrides, prediction_target
    from tadcli.profiling.step import Target, Workload, predict

    found = {}
    for preset, extra in SETTINGS:
        base = load_preset(preset, extra)
        for target in (prediction_target("cuda", None, find_gpu("A100-40GB"), base), Target("cpu", "fp32")):
            for mode in MODES:
                variant = load_preset(preset, [*extra, *mode_overrides(mode, base)])
                batch = variant.train.micro_batch_size or variant.train.batch_size
                profile = predict(Workload(variant, batch, variant.train.batch_size // batch, 20), target)
                key = f"{preset} {' '.join(extra)} {target.device} {mode.value}"
                found[key] = {
                    "parameters": [profile.total_parameters, profile.trainable_parameters],
                    "training": dataclasses.asdict(profile.training),
                    "inference": dataclasses.asdict(profile.inference),
                }
                print(key, profile.training.peak, flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="OUT.json, or the two files to compare with --compare")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        first, second = (json.load(open(path)) for path in args.files)
        differ = sorted(key for key in first.keys() | second.keys() if first.get(key) != second.get(key))
        print(f"{len(first)} predictions; {len(differ)} differ" + "".join(f"\n  {key}" for key in differ))
        sys.exit(1 if differ else 0)
    with open(args.files[0], "w") as out:
        json.dump(snapshot(), out, indent=1)


if __name__ == "__main__":
    main()
