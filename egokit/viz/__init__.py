"""Pure renderers: pictures from arrays and results (numpy, PIL, matplotlib); no widgets, no model maths."""

from egokit.viz.heatmap import grid_boxes, overlay_heatmap, token_heatmap
from egokit.viz.png import ReprPNG, to_png_bytes
from egokit.viz.scene import draw_caption, draw_scene, gallery, object_label, upscale

__all__ = [
    "ReprPNG",
    "draw_caption",
    "draw_scene",
    "gallery",
    "grid_boxes",
    "object_label",
    "overlay_heatmap",
    "to_png_bytes",
    "token_heatmap",
    "upscale",
]
