"""egokit.widgets: ipywidgets views over the kit's results. No model maths lives here: widgets call the
library, cache what it returns, and re-render on slider changes."""

from egokit.widgets.ego import KeywordPicker, MemoryCompare, TokenHeatmap
from egokit.widgets.explorer import AttentionExplorer
from egokit.widgets.misalign import MisalignmentViewer
from egokit.widgets.pixel import WordLocator

__all__ = ["AttentionExplorer", "MisalignmentViewer"]
__all__ += ["KeywordPicker", "MemoryCompare", "TokenHeatmap"]
__all__ += ["WordLocator"]
