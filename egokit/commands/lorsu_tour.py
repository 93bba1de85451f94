"""The LoRSU section of `egokit tour` (registered on import; `egokit tour` finds it through `egokit.commands.discover`).

To stay within about a minute on a laptop CPU it runs a reduced protocol, and says so: the five sessions
with 5 shots per class, LoRSU against full fine-tuning and LoRA only, fewer epochs and smaller test sets
than `egokit lorsu eval` (whose command the section prints for the full comparison).
"""

from __future__ import annotations

from typing import Any

from egokit.tour.report import Section, TourContext, register_section

MODEL = "micro-clip"
TITLE = "LoRSU: fixing an imperfect vision encoder with sparse, structured updates"
TOUR_METHODS = ("lorsu", "full", "lora")


def tour_settings(seed: int) -> Any:
    """The reduced settings the tour runs (documented in the section's text)."""
    from egokit.methods.lorsu.evaluation import Settings

    return Settings(shots=5, seed=seed, epochs=10, target_per_class=12, control_images=96)


@register_section("lorsu", TITLE, order=30)
def lorsu_section(ctx: TourContext) -> Section:
    """Five continual few-shot sessions on the micro CLIP's held-out attributes: TI, CC and cost."""
    from egokit.methods.lorsu.evaluation import evaluate

    seed = ctx.seed + 1  # the hyper-parameters were chosen on seed 0
    settings = tour_settings(seed)
    result = evaluate(ctx.model(MODEL), methods=TOUR_METHODS, settings=settings, progress=False)
    m = result.metrics()
    metrics = {
        "model": MODEL,
        "sessions": len(result.sessions),
        "shots": settings.shots,
        "epochs": settings.epochs,
        "target_before": m["before"]["target"],
        "control_before": m["before"]["control"],
        **{f"{name}.{k}": v[k] for name, v in m["methods"].items()
           for k in ("ti", "cc", "trainable_params", "optimizer_bytes", "seconds")},
    }
    return Section(
        key="lorsu",
        title=TITLE,
        summary=(
            "The micro CLIP never saw pink, hexagons, purple triangles or orange striped objects. Five "
            "continual sessions with 5 images per class teach them to the vision encoder alone; TI is the "
            "gain on those held-out classes and CC the change on colours, shapes and patterns it already "
            "knew. This section runs a reduced protocol to stay near a minute on a CPU (LoRSU, full "
            f"fine-tuning and LoRA only, {settings.epochs} epochs, {settings.target_per_class} test images per "
            f"target class, {settings.control_images} control images, seed {seed}); the command below runs "
            "all methods, SPU, LayerNorm tuning and the ablations at full size."
        ),
        images=[("TI vs CC per method; LoRSU's chosen heads and fc1 weights per session and block",
                 result.to_image()),
                ("Target and control accuracy after each session", result.curves_image())],
        metrics=metrics,
        commands=[f"egokit lorsu eval --json --shots 5 --seed {seed}"],
    )


__all__ = ["lorsu_section", "tour_settings"]
