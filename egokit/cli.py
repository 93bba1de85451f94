"""The `egokit` command line.

Every sub-command is a small function that imports what it needs lazily, so `egokit --help` is instant.
Errors the kit raises on purpose (`EgokitError`) are printed as one line with a non-zero exit code; an
unexpected error is printed as one line too, with a hint to re-run with `--debug` for the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from egokit.errors import EgokitError

Handler = Callable[[argparse.Namespace], int | None]


def emit_json(obj: Any) -> None:
    """Print a JSON document to stdout (used by every `--json` flag)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------------------------------------- handlers


def _cmd_tour(args: argparse.Namespace) -> int:
    from egokit.tour import run_tour

    index = run_tour(out_dir=Path(args.out), device=args.device, seed=args.seed)
    print(f"egokit tour: report written to {index}")
    return 0


def _cmd_data_sample(args: argparse.Namespace) -> int:
    from egokit.data.export import write_samples

    out = write_samples(Path(args.out), seed=args.seed, n=args.n, size=args.size)
    print(f"egokit data sample: wrote {args.n} scenes and ground truth to {out}")
    return 0


def _cmd_bench_capture(args: argparse.Namespace) -> int:
    from egokit.capture.bench import run_capture_benchmark

    result = run_capture_benchmark(layers=args.layers, repeats=args.repeats, visual_tokens=args.visual_tokens,
                                   text_tokens=args.text_tokens, seed=args.seed)
    if args.json:
        emit_json(result)
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    return 0


def _cmd_misalign_score(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.data.images import load_image
    from egokit.methods.misalign import score
    from egokit.methods.misalign_inputs import check_caption

    check_caption(args.caption)  # fail on bad input before loading any weights
    image = load_image(args.image)
    result = score(load(args.model, device=args.device), image, args.caption, layers=args.layers,
                   eps=args.eps, variant=args.variant, template=args.template, heatmaps=args.out is not None,
                   truncate=args.truncate)
    if args.out:
        from egokit.methods.misalign_cli import write_picture

        write_picture(result, Path(args.out), args.word)
    if args.json:
        emit_json(result.to_dict())
    else:
        from egokit.methods.misalign_cli import summary_lines

        print("\n".join(summary_lines(result, args.out)))
    return 0


def _cmd_misalign_eval(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.methods.misalign_eval import evaluate

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    metrics = evaluate(load(args.model, device=args.device), seed=args.seed, n=args.n, eps=args.eps,
                       layers=args.layers, captum=not args.no_captum)
    if args.json:
        emit_json(metrics)
    else:
        for k, v in metrics.items():
            print(f"{k:>24}: {v}")
    return 0


def _cmd_zoo_eval(args: argparse.Namespace) -> int:
    from egokit.zoo.eval import run

    metrics = run(args)
    if args.json:
        emit_json(metrics)
    else:
        for k, v in sorted(metrics.items()):
            print(f"{k:>40}: {v}")
    return 0


def _cmd_zoo_train(args: argparse.Namespace) -> int:
    from egokit.zoo.train import run

    print(f"egokit zoo train: wrote {run(args)}")
    return 0


def _cmd_lorsu_eval(args: argparse.Namespace) -> int:
    from egokit.methods.lorsu_cli import run_eval

    metrics = run_eval(model=args.model, device=args.device, shots=args.shots, seed=args.seed, quick=args.quick,
                       out=args.out, picture=args.picture, threads=args.threads)
    if args.json:
        emit_json(metrics)
    else:
        from egokit.methods.lorsu_cli import summary_lines

        print("\n".join(summary_lines(metrics)))
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.data.images import load_image
    from egokit.errors import InputError
    from egokit.explore import exploration_summary, explore

    if not args.prompt.strip():
        raise InputError("the prompt is empty: ask a question about the image")
    image = load_image(args.image)  # fail on a bad image before loading any weights
    result = explore(load(args.model, device=args.device), image, args.prompt, max_new_tokens=args.max_new_tokens)
    token = args.word
    if args.out:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(args.out), to_png_bytes(result.to_image(token)))
    if args.json:
        emit_json(result.to_dict())
    else:
        print("\n".join(exploration_summary(result)))
        if args.out:
            print(f"picture written to {args.out}")
    return 0


def _cmd_ego_eval(args: argparse.Namespace) -> int:
    from egokit.methods.ego_cli import run_eval

    metrics = run_eval(args)
    if args.json:
        emit_json(metrics)
    else:
        from egokit.methods.ego_cli import summary_lines

        print("\n".join(summary_lines(metrics)))
    return 0


def _cmd_ego_remember(args: argparse.Namespace) -> int:
    from egokit.methods.ego_cli import run_remember

    out = run_remember(args)
    if args.json:
        emit_json(out)
    else:
        m = out["memory"]
        print(f"remembered {m['name']!r}: {m['tokens']} tokens ({m['bytes']} bytes), keywords: "
              f"{' '.join(m['keywords'])}; bank {out['bank']} holds {', '.join(out['concepts'])}")
    return 0


def _cmd_ego_ask(args: argparse.Namespace) -> int:
    from egokit.methods.ego_cli import run_ask

    out = run_ask(args)
    if args.json:
        emit_json(out)
    else:
        print(out["text"])
    return 0


def _cmd_sa2vp_eval(args: argparse.Namespace) -> int:
    from egokit.methods.sa2vp_cli import run_eval, summary_lines

    result = run_eval(model=args.model, device=args.device, seed=args.seed, epochs=args.epochs, quick=args.quick,
                      out=args.out, picture=args.picture, threads=args.threads)
    if args.json:
        emit_json(result.to_dict())
    else:
        print("\n".join(summary_lines(result)))
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egokit",
        description="Look inside vision-language models: attention, gradients, and five research methods.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tour", help="run every method on the micro zoo and write an HTML report")
    p.add_argument("--out", default="egokit-report", help="folder for index.html and metrics.json")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tour)

    p = sub.add_parser("data", help="ShapesWorld data with ground truth")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    q = dsub.add_parser("sample", help="write N scenes as PNG files plus one JSON file of ground truth")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--n", type=int, default=8)
    q.add_argument("--size", type=int, default=64, help="image side in pixels")
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=_cmd_data_sample)

    p = sub.add_parser("bench", help="benchmarks with JSON output")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT")
    q = bsub.add_parser("capture", help="plain vs targeted capture vs eager output_attentions")
    q.add_argument("--layers", type=int, default=4, help="language-model layers (24 in the real model)")
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--visual-tokens", type=int, default=730)
    q.add_argument("--text-tokens", type=int, default=60)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_bench_capture)

    p = sub.add_parser("misalign", help="CLIP4DM: which caption words do not match the image")
    msub = p.add_subparsers(dest="misalign_command", metavar="ACTION")
    q = msub.add_parser("score", help="per-word misalignment of a caption against an image")
    q.add_argument("image", help="image file")
    q.add_argument("caption", help="the caption to check (quote it)")
    q.add_argument("--model", default="micro-clip", help="micro zoo name, local folder or hub id of a CLIP/SigLIP")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--layers", type=int, default=None,
                   help="last text layers to attribute (default: the model's calibrated number, else 3)")
    q.add_argument("--eps", type=float, default=None, help="flag words scoring below this (default: calibrated)")
    q.add_argument("--variant", default="signed",
                   choices=["signed", "clamped", "positive_only", "chefer", "captum"])
    q.add_argument("--template", default=None, help='text before the caption (default: "A photo depicts ")')
    q.add_argument("--truncate", action="store_true", help="cut an over-long caption instead of failing")
    q.add_argument("--out", default=None, help="write a PNG: the image with a word's heatmap over the caption")
    q.add_argument("--word", default=None, help="the word whose heatmap --out shows (default: most negative)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_misalign_score)
    q = msub.add_parser("eval", help="localisation accuracy, AP and speed on ShapesWorld foils (test split)")
    q.add_argument("--model", default="micro-clip")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--seed", type=int, default=0, help="ShapesWorld seed (test split; ε from the val split)")
    q.add_argument("--n", type=int, default=200, help="scenes (foil pairs and multi-error captions)")
    q.add_argument("--eps", type=float, default=None, help="use this eps instead of calibrating it")
    q.add_argument("--layers", type=int, default=None,
                   help="last text layers to attribute (default: calibrated on the validation split)")
    q.add_argument("--no-captum", action="store_true", help="skip the (slower) captum baseline")
    q.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy machine)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_misalign_eval)

    p = sub.add_parser("zoo", help="the micro zoo: train and evaluate the shipped micro models")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    q = zsub.add_parser("eval", help="metrics of micro-clip and micro-vlm on the ShapesWorld test split")
    from egokit.zoo.eval import add_arguments as _zoo_eval_arguments
    _zoo_eval_arguments(q)
    q.set_defaults(func=_cmd_zoo_eval)
    q = zsub.add_parser("train", help="train a micro model (same as python -m egokit.zoo.train)")
    from egokit.zoo.train import add_arguments as _zoo_train_arguments
    _zoo_train_arguments(q)
    q.set_defaults(func=_cmd_zoo_train)

    p = sub.add_parser("lorsu", help="LoRSU: sparse structured updates of an imperfect CLIP vision encoder")
    lsub = p.add_subparsers(dest="lorsu_command", metavar="ACTION")
    q = lsub.add_parser("eval", help="continual few-shot sessions on held-out ShapesWorld attributes: TI, CC, cost")
    q.add_argument("--model", default="micro-clip", help="micro zoo name, local folder or hub id of a CLIP")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--shots", type=int, default=5, help="training images per class and session")
    q.add_argument("--seed", type=int, default=1, help="seed of the few shots, test images and initialisation")
    q.add_argument("--quick", action="store_true", help="a fast smoke run (few epochs and test images)")
    q.add_argument("--out", default=None, help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, help="write the summary picture (PNG) here")
    q.add_argument("--threads", type=int, default=1, help="CPU threads (small models run fastest on one; 0: torch's default)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_lorsu_eval)


    p = sub.add_parser("explore", help="where each generated word looks: attention, rollout, gradient x attention")
    p.add_argument("image", help="image file")
    p.add_argument("prompt", help="the question or instruction (quote it)")
    p.add_argument("--model", default="micro-vlm", help="micro zoo name, local folder or hub id of a VLM")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--word", default=None, help="the generated word to picture (default: the first content word)")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--out", default=None, help="write a PNG strip: image, attention, rollout, gradient")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_explore)

    p = sub.add_parser("ego", help="Ego: personal concepts as a few attention-selected visual tokens")
    esub = p.add_subparsers(dest="ego_command", metavar="ACTION")
    q = esub.add_parser("eval", help="Ego vs its baselines on held-out ShapesWorld concepts (F1, precision, size, speed)")
    q.add_argument("--model", default="micro-vlm", help="micro zoo name, local folder or hub id of a VLM")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--seed", type=int, default=0, help="which held-out concepts, names and query scenes")
    q.add_argument("--concepts", type=int, default=16, help="held-out concepts to evaluate")
    q.add_argument("--budget", type=_ego_budget, default=0.2, help="tokens kept per view: a share (0.2) or a count (13)")
    q.add_argument("--threads", type=int, default=1, help="CPU threads (small models run fastest on one; 0: torch's default)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_ego_eval)
    q = esub.add_parser("remember", help="add a concept (from reference images) to a memory bank file")
    q.add_argument("images", nargs="+", help="reference image file(s) of the concept")
    q.add_argument("name", help="the concept's name (one word)")
    q.add_argument("--bank", required=True, help="memory bank file (created if missing)")
    q.add_argument("--model", default="micro-vlm", help="micro zoo name, local folder or hub id of a VLM")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--budget", type=_ego_budget, default=0.2, help="tokens kept per view: a share or a count")
    q.add_argument("--selection", default="ego", choices=["ego", "uniform", "random", "all", "keywords"])
    q.add_argument("--keywords", default=None, help="use these words instead of the model's description (quote them)")
    q.add_argument("--dynamic", action="store_true", help="budget from the model's coverage answer (capped)")
    q.add_argument("--out", default=None, help="write a PNG of the kept tokens on each view")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_ego_remember)
    q = esub.add_parser("ask", help="ask about an image (or frames) with a memory bank's concepts in context")
    q.add_argument("images", nargs="+", help="image file, or several video frames")
    q.add_argument("question", help="the question (quote it)")
    q.add_argument("--bank", required=True, help="memory bank file written by `egokit ego remember`")
    q.add_argument("--model", default="micro-vlm", help="micro zoo name, local folder or hub id of a VLM")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--max-new-tokens", type=int, default=24)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_ego_ask)

    from egokit.methods.pixel_cli import add_pixel_commands
    add_pixel_commands(sub)

    p = sub.add_parser("sa2vp", help="SA²VP: a spatially aligned visual prompt on a frozen ViT, vs VPT")
    ssub = p.add_subparsers(dest="sa2vp_command", metavar="ACTION")
    q = ssub.add_parser("eval", help="SA²VP vs VPT-deep, VPT-shallow and a linear probe on ShapesWorld tasks, ablations")
    q.add_argument("--model", default="micro-clip", help="micro zoo name, local folder or hub id of a CLIP/SigLIP/ViT")
    q.add_argument("--device", default="auto", help="auto, cpu or cuda")
    q.add_argument("--seed", type=int, default=0, help="data and training seed (test images: seed + 1000)")
    q.add_argument("--epochs", type=int, default=None, help="training epochs of the prompt methods")
    q.add_argument("--quick", action="store_true", help="a fast smoke run (tiny data sets, one epoch)")
    q.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")
    q.add_argument("--out", default=None, help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, help="write the summary picture (PNG) here")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_sa2vp_eval)

    return parser


def _ego_budget(text: str) -> int | float:
    from egokit.methods.ego_cli import budget_arg

    return budget_arg(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        # `egokit` or `egokit data` with no action: show the relevant help.
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    debug = args.debug or os.environ.get("EGOKIT_DEBUG") == "1"
    try:
        code = func(args)
    except EgokitError as e:
        if debug:
            raise
        print(f"egokit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egokit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never shows a raw traceback
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"egokit: unexpected error ({type(e).__name__}: {first}); re-run with --debug for details",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
