"""egokit.widgets: ipywidgets views over the kit's results. No model maths lives here: widgets call the
library, cache what it returns, and re-render on slider changes."""

from egokit.widgets.explorer import AttentionExplorer

__all__ = ["AttentionExplorer"]
