"""The SA²VP section of `egokit tour` (registered on import; `egokit tour` finds it through `egokit.commands.discover`).

To stay within about a minute on a laptop CPU it runs a reduced protocol and says so: one spatial task
(`TOUR_TASK`), SA²VP against VPT-deep with a matched parameter count and the linear probe, on fewer
training images and epochs than `egokit sa2vp eval` (whose command the section prints for the full
comparison with VPT-shallow, all four tasks and the ablations).
"""

from __future__ import annotations

import time
from typing import Any

from egokit.tour.report import Section, TourContext, register_section

MODEL = "micro-clip"
TITLE = "SA²VP: a spatially aligned visual prompt on a frozen ViT"
TOUR_TASK = "left_of"
TOUR_METHODS = ("sa2vp", "vpt_deep", "linear")


def tour_settings(seed: int) -> Any:
    """The reduced settings the tour runs (documented in the section's text)."""
    from egokit.methods.sa2vp.evaluation import EvalSettings

    return EvalSettings(seed=seed, epochs=4, n_train=800, n_test=200, tasks=(TOUR_TASK,), ablations=False,
                        n_maps=8)


def run_short(model: Any, seed: int, methods: tuple[str, ...] = TOUR_METHODS, progress: bool = False,
              settings: Any = None) -> dict[str, Any]:
    """Train `methods` on the tour task with `tour_settings` (or `settings`); return accuracies, parameter
    counts, seconds, chance, the VPT length and SA²VP's prompt-change maps. `model` is a `LoadedModel`."""
    import torch

    from egokit.methods.sa2vp.evaluation import build_method, task_data, vpt_length_for
    from egokit.methods.sa2vp.model import prompt_change_maps
    from egokit.methods.sa2vp.training import accuracy, fit
    from egokit.models.vit_parts import vit_parts

    settings = settings or tour_settings(seed)
    task = settings.tasks[0]
    tower = vit_parts(model.model).tower.float()
    d = task_data(task, settings, model.processor)
    length = vpt_length_for(vit_parts(tower), settings)
    out: dict[str, Any] = {"acc": {}, "trainable_params": {}, "seconds": {}, "chance": d["chance"],
                           "settings": settings, "vpt_length": length}
    for name in methods:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        net = build_method(name, tower, d["task"].num_classes, settings, length)
        fit(net, d["x_train"], d["y_train"], settings.train_settings(), desc=name, progress=progress)
        out["acc"][name] = accuracy(net, d["x_test"], d["y_test"])
        out["trainable_params"][name] = net.trainable_params
        out["seconds"][name] = round(time.perf_counter() - t0, 1)
        if name == "sa2vp":
            k = settings.n_maps
            out["maps"] = prompt_change_maps(net, d["x_test"][:k], d["test_images"][:k], d["y_test"][:k].tolist(),
                                             d["task"].classes, task)
    return out


@register_section("sa2vp", TITLE, order=50)
def sa2vp_section(ctx: TourContext) -> Section:
    """SA²VP vs VPT-deep and a linear probe on "is the blue object left of the other one?", with the
    prompt-change maps."""
    seed = ctx.seed + 1  # the hyper-parameters were chosen on seed 0's validation split
    run = run_short(ctx.model(MODEL), seed)
    s = run["settings"]
    metrics = {
        "model": MODEL,
        "task": TOUR_TASK,
        "train_images": s.n_train,
        "test_images": s.n_test,
        "epochs": s.epochs,
        "chance": run["chance"],
        **{f"{name}.acc": v for name, v in run["acc"].items()},
        **{f"{name}.trainable_params": v for name, v in run["trainable_params"].items()},
        **{f"{name}.seconds": v for name, v in run["seconds"].items()},
    }
    return Section(
        key="sa2vp",
        title=TITLE,
        summary=(
            "SA²VP gives the frozen micro CLIP a second, image-shaped input: one learned prompt token per patch, "
            "which exchanges information with the image tokens through a 3×3 local cross-attention at every "
            "block. This section runs a reduced protocol to stay near a minute on a CPU: one spatial task "
            f"(is the blue object left of the other object?), {s.n_train} training images, {s.epochs} epochs "
            "(the full evaluation trains 4), "
            f"{s.n_test} test images of a held-out seed ({seed + 1000}), SA²VP against VPT-deep with "
            f"{run['vpt_length']} prompt tokens per block (about the same number of trainable parameters) and "
            "a linear probe. The pictures show how much the prompt pathway changes each patch of test images; "
            "the command below runs the full comparison (four tasks, VPT-shallow, ablations)."
        ),
        images=[("How much the prompt pathway changes each patch (norm of the added cross-attention term, "
                 "summed over blocks), with SA²VP's answer", run["maps"].to_image())],
        metrics=metrics,
        commands=[f"egokit sa2vp eval --json --seed {ctx.seed}"],
    )


__all__ = ["run_short", "sa2vp_section", "tour_settings"]
