"""Run the workshop notebooks and save them the way they are committed: outputs kept, widget state
dropped (so every widget shows its static picture offline, on GitHub and in nbviewer), progress bars
dropped (a saved bar is frozen at whatever it showed), the standard kernel name; and record how long
each took.

    python notebooks/execute.py                       # every notebook, in place, on the CPU
    python notebooks/execute.py 03 05                 # some of them
    python notebooks/execute.py --device cuda --out gpu-run   # on a GPU: copies with their timings

Timings go to `timings.json` beside the notebooks written (with the device, threads and the machine's
load at the start, since these small machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: one line of a text progress bar (tqdm, transformers' "Loading weights"): "  0%|   | 0/6 [00:00<?, ?it/s]"
PROGRESS_LINE = re.compile(r"\d+%\|.*\|.*(it/s|s/it|step/s|s/step|\?)\]?\s*$")
#: the setting a `--device` run replaces in the first code cell
DEVICE_LINE = re.compile(r'^DEVICE = "[^"]*"', re.MULTILINE)


def notebooks(names: list[str]) -> list[Path]:
    every = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = [p for p in every if any(p.name.startswith(n) for n in names)]
    unknown = [n for n in names if not any(p.name.startswith(n) for p in every)]
    if unknown:
        raise SystemExit(f"no notebook starts with {', '.join(unknown)}; choose from "
                         f"{', '.join(p.name[:2] for p in every)}")
    return chosen


def set_device(nb: object, device: str) -> None:
    """Point the settings cell (the first code cell) at `device`."""
    cell = next(c for c in nb.cells if c.cell_type == "code")  # type: ignore[attr-defined]
    if not DEVICE_LINE.search(cell.source):
        raise SystemExit("the first code cell has no DEVICE = \"...\" line to change")
    cell.source = DEVICE_LINE.sub(f'DEVICE = "{device}"', cell.source, count=1)


def clean(nb: object) -> None:
    """Drop widget state, progress bars and the frozen text of bars; set the standard kernel name."""
    nb.metadata.pop("widgets", None)  # type: ignore[attr-defined]
    nb.metadata["kernelspec"] = dict(KERNEL)  # type: ignore[attr-defined]
    for cell in nb.cells:  # type: ignore[attr-defined]
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_VIEW in data and "image/png" not in data:
                continue  # a progress bar (every widget of the kit carries its picture)
            if out.get("output_type") == "stream":
                lines = [line for line in out.text.splitlines(keepends=True) if not PROGRESS_LINE.search(line)]
                out.text = "".join(lines)
                if not out.text.strip():
                    continue
            kept.append(out)
        cell.outputs = kept


def run(path: Path, device: str | None, out_dir: Path) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if device:
        set_device(nb, device)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - start
    clean(nb)
    target = out_dir / path.name
    tmp = target.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the workshop notebooks and save them as committed.")
    parser.add_argument("names", nargs="*", help="notebook number prefixes (default: all)")
    parser.add_argument("--device", help='set DEVICE in each settings cell (e.g. "cuda"); default: as written')
    parser.add_argument("--out", type=Path, help="write the run notebooks here instead of in place")
    args = parser.parse_args(argv)
    out_dir = args.out or HERE
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir != HERE and (HERE / "data").is_dir() and not (out_dir / "data").exists():
        (out_dir / "data").symlink_to(HERE / "data", target_is_directory=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    timings = {}
    for path in notebooks(args.names):
        seconds = run(path, args.device, out_dir)
        timings[path.name] = round(seconds, 1)
        print(f"{seconds:7.1f} s  {path.name}", flush=True)
    record_path = out_dir / "timings.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    device = args.device or "as written (the CPU here)"
    for name, seconds in timings.items():
        record[name] = {"seconds": seconds, "device": device, "cpus": os.cpu_count(),
                        "load_at_start": None if load is None else round(load, 2)}
    record_path.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
