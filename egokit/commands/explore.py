"""`egokit explore IMAGE PROMPT`: where each generated word looks (attention, rollout, gradient × attention)."""

from __future__ import annotations

import argparse
from pathlib import Path

from egokit.commands import options
from egokit.commands.registry import command


@command("explore", "where each generated word looks: attention, rollout, gradient x attention", order=5)
def explore_command(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image file")
    p.add_argument("prompt", help="the question or instruction (quote it)")
    options.model(p, "micro-vlm", "a VLM")
    options.device(p)
    p.add_argument("--word", default=None, help="the generated word to picture (default: the first content word)")
    p.add_argument("--max-new-tokens", type=options.count(), default=20)
    p.add_argument("--out", default=None, type=options.output_file(".png"), help="write a PNG strip: image, attention, rollout, gradient")
    options.json_flag(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.data.images import load_image
    from egokit.errors import InputError
    from egokit.methods.explore import exploration_summary, explore

    if not args.prompt.strip():
        raise InputError("the prompt is empty: ask a question about the image")
    image = load_image(args.image)  # fail on a bad image before loading any weights
    result = explore(load(args.model, device=args.device), image, args.prompt, max_new_tokens=args.max_new_tokens)
    if args.out:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(args.out), to_png_bytes(result.to_image(args.word)))
    if args.json:
        options.emit_json(result.to_dict())
    else:
        print("\n".join(exploration_summary(result)))
        if args.out:
            print(f"picture written to {args.out}")
    return 0
