import numpy as np
import pytest

from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny


@pytest.fixture(scope="module")
def explorer():
    from egokit.widgets import AttentionExplorer

    model, processor = build_tiny("llava")
    image = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")
    return AttentionExplorer(from_model(model, processor), image, "what color is the circle ?", max_new_tokens=4)


def test_controls_rerender_without_model_calls(explorer, monkeypatch):
    import egokit.widgets.explorer as mod

    monkeypatch.setattr(mod, "explore", lambda *a, **k: pytest.fail("a control called the model"))
    first = bytes(explorer.picture.value)
    assert first.startswith(b"\x89PNG")
    seen = {first}
    explorer.view.value = "gradient"
    seen.add(bytes(explorer.picture.value))
    explorer.view.value = "attention"
    explorer.layer.value = 0
    explorer.head.value = 1
    seen.add(bytes(explorer.picture.value))
    explorer.token.value = (explorer.token.value + 1) % len(explorer.token.options)
    seen.add(bytes(explorer.picture.value))
    assert len(seen) >= 3
    assert "captured" in explorer.info.value and "MiB" in explorer.info.value


def test_options_follow_the_model(explorer):
    att = explorer.result.look.attentions
    assert len(explorer.layer.options) == att.shape[0] + 1
    assert len(explorer.head.options) == att.shape[1] + 1
    assert [v for _, v in explorer.token.options] == list(range(len(explorer.result.tokens)))
    assert "rollout" in explorer.view.options


def test_static_twin(explorer):
    png = explorer._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert explorer.to_image().size == explorer.result.to_image(explorer.token.value).size
