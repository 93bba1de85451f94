"""egokit.methods.misalign.scoring on tiny random CLIPs: the attribution equals a direct autograd computation of the
formula (eager attention, output_attentions, retain_grad — no capture engine), variants, batching, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import egokit
import egokit.methods.misalign.scoring as misalign
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import CapabilityError, ImageError, InputError
from egokit.methods.misalign.inputs import PAPER_TEMPLATE, default_template
from egokit.models.tiny import build_tiny

TEXT_LAYERS = 4


def _tiny(attn: str = "sdpa", family: str = "clip"):
    return build_tiny(family, seed=3, attn_implementation=attn, text_config={"num_hidden_layers": TEXT_LAYERS})


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


@pytest.fixture(scope="module")
def eager():
    return _tiny("eager")


@pytest.fixture(scope="module")
def scene():
    return ShapesWorld(seed=0, split="val").scene(1)


def _reference(model, processor, image, text, layers, rule="signed"):
    """The formula, computed directly: eager attentions with retain_grad, s = cos(image, text), backward."""
    enc = processor.tokenizer([text], return_tensors="pt")
    pixel = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    out = model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    atts = out.attentions
    assert len(atts) == TEXT_LAYERS
    for a in atts:
        a.retain_grad()
    t = model.text_projection(out.pooler_output)
    with torch.no_grad():
        i = model.get_image_features(pixel_values=pixel).pooler_output
    s = F.cosine_similarity(t, i, dim=-1)
    s.sum().backward()
    eot = int((enc["input_ids"][0] == model.config.text_config.eos_token_id).nonzero()[0])
    if rule == "chefer":
        n = atts[0].shape[-1]
        rel = torch.eye(n)
        for a in atts:
            rel = rel + (a.grad[0] * a[0]).clamp_min(0).mean(0) @ rel
        return rel[eot].detach(), float(s.detach())
    per_layer = []
    for layer in layers:
        a = atts[layer]
        gxa = a.grad[0] * a[0]  # (H, T, T)
        if rule == "clamped":
            gxa = gxa.clamp_min(0)
        per_layer.append(gxa.mean(0))
    r = torch.stack(per_layer).mean(0)[eot].detach()
    if rule == "positive_only":
        r = r.clamp_min(0)
    return r, float(s.detach())


@pytest.mark.parametrize("rule", ["signed", "clamped", "positive_only", "chefer"])
def test_attribution_equals_direct_autograd(tiny, eager, scene, rule):
    template = "a photo of "
    result = misalign.score(tiny, scene.image, scene.caption, layers=3, variant=rule, template=template,
                            heatmaps=False)
    expected, s = _reference(*eager, scene.image, template + scene.caption, [1, 2, 3], rule)
    assert result.layers == [1, 2, 3]
    assert result.similarity == pytest.approx(s, abs=1e-5)
    assert result.token_scores.shape == expected.shape
    torch.testing.assert_close(result.token_scores, expected, atol=1e-7, rtol=1e-4)
    # word-level tokenizer: one token per word, template tokens dropped, so word scores are token scores
    n_template = len(template.split())
    words = result.words
    assert words == scene.caption.split()
    torch.testing.assert_close(result.scores, expected[1 + n_template : 1 + n_template + len(words)])
    assert result.token_word[: 1 + n_template] == [-1] * (1 + n_template) and result.token_word[-1] == -1


def test_signed_keeps_negative_words_and_one_sign_variants_do_not(tiny):
    sw = ShapesWorld(seed=0, split="val")
    scenes = [sw.scene(i) for i in range(4)]
    images, captions = [s.image for s in scenes], [s.caption for s in scenes]
    res = misalign.score_variants(tiny, images, captions, variants=("signed", "clamped", "positive_only"))
    assert any((r.scores < 0).any() for r in res["signed"])
    for signed, clamped, positive in zip(res["signed"], res["clamped"], res["positive_only"]):
        assert (clamped.scores >= 0).all() and not torch.equal(clamped.scores, signed.scores)
        torch.testing.assert_close(positive.scores, signed.scores.clamp_min(0))
        assert clamped.flagged == [] and positive.flagged == []


def test_captum_variant_is_integrated_gradients_with_completeness(tiny, scene):
    result = misalign.score(tiny, scene.image, scene.caption, variant="captum", heatmaps=False)
    assert result.scores.shape == (len(result.words),)
    assert torch.isfinite(result.scores).all() and result.scores.abs().sum() > 0
    # baseline tokens of special positions are kept, so they get (almost) no attribution
    specials = [i for i, w in enumerate(result.token_word) if w < 0]
    assert result.token_scores[specials].abs().max() < 1e-6


def test_scores_and_flags_follow_the_definitions(tiny, scene):
    r = misalign.score(tiny, scene.image, scene.caption, eps=-1e-4, heatmaps=False)
    eligible = [i for i, w in enumerate(r.words) if any(c.isalnum() for c in w)]
    assert r.flagged == [i for i in eligible if float(r.scores[i]) < -1e-4]
    assert r.most_negative == min(eligible, key=lambda i: float(r.scores[i]))
    assert r.clipscore == pytest.approx(2.5 * max(r.similarity, 0))
    factor = 1 - max(r.similarity, 0.0)
    assert r.fclipscore == pytest.approx(factor * float(r.scores[r.flagged].sum()), rel=1e-5)
    assert r.fclipscore_most_negative == pytest.approx(factor * float(r.scores[r.most_negative]), rel=1e-5)
    assert r.fclipscore <= 0
    assert "." not in r.flagged_words


def test_batched_equals_single(tiny):
    sw = ShapesWorld(seed=2, split="test")
    scenes = [sw.scene(i) for i in range(3)]
    images = [s.image for s in scenes] + [scenes[0].image]
    captions = [s.caption for s in scenes] + ["a red circle ."]  # different lengths: padding inside the batch
    batched = misalign.score_batch(tiny, images, captions, batch_size=8)
    for img, cap, b in zip(images, captions, batched):
        single = misalign.score(tiny, img, cap, heatmaps=False)
        assert b.words == single.words
        assert b.similarity == pytest.approx(single.similarity, abs=1e-6)
        torch.testing.assert_close(b.token_scores, single.token_scores, atol=1e-8, rtol=1e-4)
    # batch_size smaller than the number of captions gives the same results
    chunked = misalign.score_batch(tiny, images, captions, batch_size=2)
    for a, b in zip(batched, chunked):
        torch.testing.assert_close(a.scores, b.scores, atol=1e-8, rtol=1e-4)


def test_heatmaps_one_per_word_over_the_patch_grid(tiny, scene):
    r = misalign.score(tiny, scene.image, scene.caption)
    assert r.heatmaps.shape == (len(r.words), 64)
    assert r.boxes.shape == (64, 4) and r.grid == (8, 8)
    assert torch.isfinite(r.heatmaps).all() and r.heatmaps.abs().sum() > 0
    assert r.heatmap_image(r.words[2]).size == (256, 256)
    assert r.to_image().width >= 256


def test_no_parameter_gradients_left_behind(tiny, scene):
    model = tiny[0]
    misalign.score(tiny, scene.image, scene.caption, variant="signed")
    misalign.score(tiny, scene.image, scene.caption, variant="chefer", heatmaps=False)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_works_under_no_grad_and_on_a_loaded_model(tiny, scene):
    from egokit.models.loading import from_model

    loaded = from_model(*tiny)
    with torch.no_grad():
        a = misalign.score(loaded, scene.image, scene.caption, heatmaps=False)
    b = misalign.score(tiny, scene.image, scene.caption, heatmaps=False)
    torch.testing.assert_close(a.scores, b.scores)
    assert egokit.misalign.score is misalign.score


def test_siglip_runs_and_pools_at_the_last_position(scene):
    model, processor = build_tiny("siglip", seed=1)
    r = misalign.score((model, processor), scene.image, "a small red striped circle", heatmaps=True)
    assert r.words == ["a", "small", "red", "striped", "circle"]
    assert torch.isfinite(r.scores).all() and r.scores.abs().sum() > 0
    assert r.heatmaps.shape == (5, 64)


def test_default_template_depends_on_the_vocabulary(tiny):
    assert default_template(tiny[1].tokenizer) == ""  # "depicts" is not in the tiny word vocabulary
    from egokit.models.text import byte_bpe_tokenizer

    assert default_template(byte_bpe_tokenizer(["a photo"], vocab_size=270)) == PAPER_TEMPLATE


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("caption", ["", "   \n\t", None, 3])
def test_empty_or_non_text_caption_is_an_input_error(tiny, scene, caption):
    with pytest.raises(InputError):
        misalign.score(tiny, scene.image, caption)


def test_over_long_caption_errors_naming_the_words_or_truncates_with_a_warning(tiny, scene):
    words = [f"{c} circle" for c in ("red", "blue", "green", "pink")] * 5  # 40 words > 32 tokens
    caption = " ".join(words)
    with pytest.raises(InputError, match="do not fit.*circle"):
        misalign.score(tiny, scene.image, caption)
    with pytest.warns(UserWarning, match="dropped") as record:
        r = misalign.score(tiny, scene.image, caption, truncate=True, heatmaps=False)
    dropped = caption.split()[len(r.words):]
    assert r.dropped_words == dropped and len(dropped) > 0
    assert " ".join(dropped[:3]) in str(record[0].message)
    assert len(r.tokens) == 32 and r.words == caption.split()[: len(r.words)]


def test_exactly_fitting_caption_needs_no_truncation(tiny, scene):
    caption = " ".join(["red"] * 30)  # bos + 30 + eos = 32 tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = misalign.score(tiny, scene.image, caption, heatmaps=False)
    assert len(r.words) == 30 and r.dropped_words == []


@pytest.mark.parametrize("image", [b"not an image", "/no/such/file.png", np.zeros((4, 4, 7), dtype=np.uint8)])
def test_bad_image_is_an_image_error(tiny, image):
    with pytest.raises(ImageError):
        misalign.score(tiny, image, "a red circle")


def test_bad_arguments(tiny, scene):
    with pytest.raises(InputError, match="variant"):
        misalign.score(tiny, scene.image, "a red circle", variant="relu")
    with pytest.raises(InputError, match="images"):
        misalign.score_batch(tiny, [scene.image] * 2, ["a", "b", "c"])
    with pytest.raises(InputError):
        misalign.score(tiny, scene.image, "a red circle", layers=0)
    with pytest.raises(InputError):
        misalign.score(tiny, scene.image, "a red circle", eps=float("nan"))
    with pytest.raises(CapabilityError, match="misalignment scoring.*dual encoder"):
        misalign.score(build_tiny("llava"), scene.image, "a red circle")


# ------------------------------------------------------------------------------------------ checkpoint settings


def test_layers_and_eps_come_from_the_checkpoint_settings(tiny, scene):
    from egokit.models.loading import from_model

    calibrated = from_model(*tiny, settings={"misalign": {"layers": 2, "eps": -1e-3}})
    r = misalign.score(calibrated, scene.image, scene.caption, heatmaps=False)
    assert r.layers == [TEXT_LAYERS - 2, TEXT_LAYERS - 1] and r.eps == -1e-3
    given = misalign.score(calibrated, scene.image, scene.caption, layers=1, eps=-2e-3, heatmaps=False)
    assert given.layers == [TEXT_LAYERS - 1] and given.eps == -2e-3
    only_layers = from_model(*tiny, settings={"misalign": {"layers": 4}, "ego": {"eps": 1.0}})
    r = misalign.score(only_layers, scene.image, scene.caption, heatmaps=False)
    assert r.layers == list(range(TEXT_LAYERS)) and r.eps == misalign.PAPER_EPS


def test_a_model_without_settings_gets_the_paper_defaults(tiny, scene):
    from egokit.models.loading import from_model

    for model in (tiny, from_model(*tiny, name="micro-clip")):  # a pair, or settings-less under the zoo's name
        r = misalign.score(model, scene.image, scene.caption, heatmaps=False)
        assert r.layers == list(range(TEXT_LAYERS - misalign.PAPER_LAYERS, TEXT_LAYERS))
        assert r.eps == misalign.PAPER_EPS


def test_the_micro_clip_ships_its_calibration():
    loaded = egokit.load("micro-clip", device="cpu")
    assert loaded.settings_for("misalign") == {"layers": 4, "eps": -2.27e-3}
    r = misalign.score(loaded, ShapesWorld(seed=0, split="test").scene(0).image, "a red circle .", heatmaps=False)
    assert r.layers == [0, 1, 2, 3] and r.eps == -2.27e-3 and r.model_name == "micro-clip"
