"""egokit.pixel on a tiny random LLaVA: the point head, localize/refer, the tuned-layer swap, results and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import egokit
import egokit.methods.pixel.locate as pixel
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import CapabilityError, InputError, MemoryFileError, ModelLoadError
from egokit.methods.pixel.head import (
    FEATURES,
    LAYER_INPUTS,
    PointHead,
    box_from_points,
    decoder_layers,
    feature_hooks,
    hidden_size,
)
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny("llava", seed=0)
    return from_model(model, processor)


@pytest.fixture(scope="module")
def scene():
    return ShapesWorld(seed=0, split="test").scene(2)


def _head(lm, tuned: bool = False, seed: int = 0) -> PointHead:
    torch.manual_seed(seed)
    layer = decoder_layers(lm)[-1]
    state = {k: v.detach() + 0.5 * torch.randn_like(v) for k, v in layer.named_parameters()} if tuned else None
    last = len(decoder_layers(lm)) - 1
    return PointHead(32, hidden=16, layer_states={last: state} if tuned else None,
                     meta={"base_model": "tiny", "base_fingerprint": lm.fingerprint()})


def test_point_head_shapes_range_and_start():
    plain = PointHead(24, hidden=8, depth=4, readout=False)
    assert sum(isinstance(m, torch.nn.Linear) for m in plain.mlp) == 4
    assert sum(isinstance(m, torch.nn.GELU) for m in plain.mlp) == 3
    with torch.no_grad():
        out = plain(torch.randn(3, 5, 24))
        assert out.shape == (3, 5, 2, 2) and float(out.min()) >= 0 and float(out.max()) <= 1
        box = box_from_points(plain(torch.zeros(24)))
    assert box.tolist() == pytest.approx([0.35, 0.35, 0.65, 0.65], abs=0.05)  # an untrained head: a centred box
    head = PointHead(24, hidden=8, depth=4)
    assert sum(isinstance(m, torch.nn.Linear) for m in head.mlp) == 4
    centres = torch.rand(64, 2)
    with torch.no_grad():
        out = head(torch.randn(3, 5, 24), torch.randn(3, 64, 24), centres)
        assert out.shape == (3, 5, 2, 2) and float(out.min()) >= 0 and float(out.max()) <= 1
        # one image token alone: every head attends to it, the box starts centred on its cell
        one = box_from_points(head(torch.randn(2, 24), torch.randn(1, 24), torch.tensor([[0.7, 0.2]])))
    assert ((one[:, :2] + one[:, 2:]) / 2).flatten().tolist() == pytest.approx([0.7, 0.2] * 2, abs=0.05)
    with pytest.raises(InputError, match="image tokens"):
        head(torch.randn(5, 24))
    with pytest.raises(InputError):
        PointHead(8, depth=0)


def test_box_from_points_orders_corners():
    pts = torch.tensor([[[0.8, 0.1], [0.2, 0.6]]])
    assert box_from_points(pts).tolist()[0] == pytest.approx([0.2, 0.1, 0.8, 0.6])


def test_feature_hooks_read_what_the_vocabulary_projection_reads(tiny):
    ids = torch.tensor([[2, 5, 6, 7]])
    with feature_hooks(tiny) as hooks:
        out = tiny.model.model.language_model(input_ids=ids)
        logits = tiny.model.lm_head(out.last_hidden_state)
    assert torch.allclose(hooks[FEATURES], out.last_hidden_state)
    assert torch.allclose(tiny.model.lm_head(hooks[FEATURES]), logits)
    assert torch.allclose(hooks[LAYER_INPUTS], tiny.model.get_input_embeddings()(ids))  # what layer 0 receives
    assert not tiny.model.lm_head._forward_pre_hooks  # removed on exit
    assert not decoder_layers(tiny)[0]._forward_pre_hooks


def test_feature_hooks_keep_the_prompt_pass_not_a_decoding_step(tiny):
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad(), feature_hooks(tiny) as hooks:
        tiny.model.generate(input_ids=ids, max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0)
    assert hooks[LAYER_INPUTS].shape[1] == 4
    assert torch.allclose(hooks[LAYER_INPUTS], tiny.model.get_input_embeddings()(ids))
    assert hooks[FEATURES].shape[1] == 1  # the vocabulary projection's input: the latest call's


def test_the_family_says_where_the_decoder_layers_are(tiny):
    assert decoder_layers(tiny) is tiny.adapter.module("language_blocks")
    assert decoder_layers(tiny.adapter) is decoder_layers(tiny)
    assert hidden_size(tiny) == hidden_size(tiny.model) == 32
    with pytest.raises(InputError, match="LoadedModel"):
        decoder_layers(tiny.model)
    clip = from_model(*build_tiny("clip"))
    with pytest.raises(CapabilityError, match="point head"):
        decoder_layers(clip)


def test_localize_gives_every_word_a_point_and_box_in_image_pixels(tiny, scene):
    head = _head(tiny)
    r = pixel.localize(tiny, head, scene, max_new_tokens=6)
    assert r.kind == "caption" and r.words and len(r.tokens) == len(r.token_ids)
    assert r.token_points.shape == (len(r.tokens), 2, 2)
    assert r.word_boxes.shape == (len(r.words), 4) and r.word_points.shape == (len(r.words), 2)
    assert float(r.token_points.min()) >= 0 and float(r.token_points.max()) <= 64
    assert r.image.shape == (64, 64, 3) and r.image_size == (64, 64)
    d = r.to_dict()
    assert [w["word"] for w in d["words"]] == r.words and json.dumps(d)


def test_teacher_forced_answer_words_and_points_map_back_through_the_view(tiny, scene):
    head = _head(tiny)
    r = pixel.localize(tiny, head, scene, answer=scene.caption)
    assert r.words == scene.caption.split() and r.answer == scene.caption
    assert r.token_word == list(range(len(r.words)))  # word-level tokenizer: one token per word
    # a 128x96 picture: the processor resizes the short side and crops; points land in original pixels
    big = np.full((96, 128, 3), 200, np.uint8)
    r2 = pixel.localize(tiny, head, big, answer="a red circle")
    xs, ys = r2.token_points[..., 0], r2.token_points[..., 1]
    assert r2.image_size == (96, 128)
    assert float(xs.min()) >= 16 - 1e-4 and float(xs.max()) <= 112 + 1e-4  # the centre crop's columns
    assert float(ys.min()) >= 0 and float(ys.max()) <= 96 + 1e-4
    p = r.point(r.words[1])
    b = r.word_box(1)
    assert b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]


def test_refer_box_is_the_last_expression_tokens_two_corners_after_an_eos_terminated_expression(tiny, scene):
    """PixelLLM's rule: the expression is teacher-forced and ended by eos; the box is the two corners the head
    predicts at the expression's last token (not the min/max over every token's points)."""
    head = _head(tiny)
    seen = []
    hook = tiny.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"][0].tolist()),
                                                with_kwargs=True)
    try:
        r = pixel.refer(tiny, head, scene, "the red circle")
    finally:
        hook.remove()
    assert r.kind == "refer" and r.prompt == "where is the red circle ?" and r.words == ["the", "red", "circle"]
    tok = tiny.processor.tokenizer
    assert seen[-1][-4:] == tok.convert_tokens_to_ids(["the", "red", "circle"]) + [tok.eos_token_id]
    last = r.token_points[-1]
    assert r.box == pytest.approx((float(last[:, 0].min()), float(last[:, 1].min()), float(last[:, 0].max()),
                                   float(last[:, 1].max())))
    union = r.token_points.reshape(-1, 2)
    assert r.box != pytest.approx((float(union[:, 0].min()), float(union[:, 1].min()),
                                   float(union[:, 0].max()), float(union[:, 1].max())))
    assert r.extra["readout"] == "last_token" and r.extra["paper_rule"]
    assert torch.equal(r.box_points, last)
    # the labelled non-paper readout: the corners at the answer position (the prompt's last token)
    a = pixel.refer(tiny, head, scene, "the red circle", readout="answer_position")
    assert a.extra["readout"] == "answer_position" and not a.extra["paper_rule"]
    assert a.box == pytest.approx(tuple(r.extra["answer_position_box"]), abs=1e-3) and a.box != r.box
    assert r.box == pytest.approx(tuple(a.extra["last_token_box"]), abs=1e-3)
    with pytest.raises(InputError, match="readout"):
        pixel.refer(tiny, head, scene, "the red circle", readout="union")
    with pytest.raises(InputError, match="empty"):
        pixel.refer(tiny, head, scene, "  ")


def test_tuned_layer_is_swapped_in_only_inside_attached_and_restored_on_error(tiny, scene):
    layer = decoder_layers(tiny)[-1]
    before = {k: v.detach().clone() for k, v in layer.named_parameters()}
    tuned = _head(tiny, tuned=True)
    plain = PointHead(32, hidden=16, meta=dict(tuned.meta))
    plain.load_state_dict(tuned.state_dict())
    a = pixel.localize(tiny, plain, scene, answer=scene.caption).token_points
    b = pixel.localize(tiny, tuned, scene, answer=scene.caption).token_points
    assert not torch.allclose(a, b)  # the tuned copy changes the features the head reads
    with pytest.raises(RuntimeError, match="boom"), tuned.attached(tiny):
        assert all(torch.equal(p, tuned.layer_states[1][k]) for k, p in layer.named_parameters())
        raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in layer.named_parameters())


def test_a_head_for_another_model_is_refused(tiny, scene):
    other = from_model(*build_tiny("llava", seed=1))
    head = _head(other)
    with pytest.raises(MemoryFileError, match="retrain"):
        pixel.localize(tiny, head, scene, answer="a circle")
    wide = PointHead(48, meta={})
    with pytest.raises(MemoryFileError, match="48-wide"):
        pixel.refer(tiny, wide, scene, "the circle")
    pixel.refer(tiny, head, scene, "the circle", check=False)  # the caller may insist


def test_head_save_load_roundtrip_fp16(tiny, scene, tmp_path):
    head = _head(tiny, tuned=True)
    head.save(tmp_path / "h")
    back = pixel.load_head(tmp_path / "h")
    assert back.layer_states.keys() == head.layer_states.keys() == {1} and back.readout
    assert back.meta == head.meta and back.hidden == 16 and back.attn_heads == head.attn_heads
    from safetensors import safe_open

    with safe_open(str(tmp_path / "h" / "head.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    a = pixel.refer(tiny, head, scene, "the red circle").box
    b = pixel.refer(tiny, back, scene, "the red circle").box
    assert a == pytest.approx(b, abs=0.2)  # fp16 on disk
    assert not list((tmp_path / "h").glob("*.tmp"))


def test_load_head_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="train"):
        pixel.load_head(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(MemoryFileError, match="not a point head"):
        pixel.load_head(tmp_path / "bad")
    PointHead(8, hidden=4).save(tmp_path / "torn")
    (tmp_path / "torn" / "head.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MemoryFileError, match="cannot be read"):
        pixel.load_head(tmp_path / "torn")


def test_result_save_load_and_pictures(tiny, scene, tmp_path):
    r = pixel.localize(tiny, _head(tiny), scene, answer=scene.caption)
    back = type(r).load(r.save(tmp_path / "r.safetensors"))
    assert back.words == r.words and torch.allclose(back.token_points, r.token_points)
    assert np.array_equal(back.image, r.image)
    overview, one = r.to_image(), r.to_image(r.words[-2])
    assert overview.size == one.size and overview.width == 256
    assert overview.tobytes() != one.tobytes()
    assert r._repr_png_().startswith(PNG)
    referred = pixel.refer(tiny, _head(tiny), scene, "the circle")
    assert referred._repr_png_().startswith(PNG)
    back = type(referred).load(referred.save(tmp_path / "refer.safetensors"))
    assert back.box == pytest.approx(referred.box) and back.extra["readout"] == "last_token"
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(MemoryFileError):
        type(r).load(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="not in the answer"):
        r.point("zebra")


def test_egokit_pixel_is_the_public_module():
    assert egokit.pixel is sys.modules["egokit.methods.pixel"]
    for name in ("PointHead", "localize", "refer", "load_head", "evaluate", "quick_evaluate", "PixelResult",
                 "PixelEvaluation", "DEFAULT_MODEL", "caption_words", "iou", "referring_expressions",
                 "trace_picture", "trace_targets"):
        assert hasattr(egokit.pixel, name) and name in egokit.pixel.__all__
    assert egokit.pixel.DEFAULT_MODEL == "micro-vlm" and egokit.pixel.DEFAULT_HEAD == "micro-pixel"
    from egokit.results import Result

    assert issubclass(egokit.pixel.PixelResult, Result)
    assert (egokit.pixel.PixelResult.FILE_KIND, egokit.pixel.PixelResult.FILE_VERSION) == ("egokit.pixel_result", 1)


def test_input_errors(tiny, scene):
    head = _head(tiny)
    with pytest.raises(InputError, match="image"):
        pixel.localize(tiny, head, None)
    with pytest.raises(InputError, match="PointHead"):
        pixel.localize(tiny, object(), scene)
    with pytest.raises(InputError, match="prompt is empty"):
        pixel.localize(tiny, head, scene, prompt=" ")
    clip = from_model(*build_tiny("clip"))
    with pytest.raises(CapabilityError, match="point head"):
        pixel.localize(clip, head, scene, check=False)


def test_plain_mlp_head_works_too(tiny, scene, tmp_path):
    plain = PointHead(32, hidden=16, readout=False, meta={"base_fingerprint": tiny.fingerprint()})
    r = pixel.refer(tiny, plain, scene, "the red circle")
    back = pixel.load_head(plain.save(tmp_path / "plain"))
    assert not back.readout and pixel.refer(tiny, back, scene, "the red circle").box == pytest.approx(r.box, abs=0.2)


def test_result_files_that_are_damaged_or_foreign_are_clear_errors(tiny, scene, tmp_path):
    from egokit.results import save_result

    r = pixel.localize(tiny, _head(tiny), scene, answer=scene.caption)
    path = r.save(tmp_path / "r.safetensors")
    (tmp_path / "torn.safetensors").write_bytes(path.read_bytes()[:-40])
    with pytest.raises(MemoryFileError, match="not a readable pixel result"):
        type(r).load(tmp_path / "torn.safetensors")
    with pytest.raises(MemoryFileError, match="does not exist"):
        type(r).load(tmp_path / "missing.safetensors")
    save_result(tmp_path / "other.safetensors", "egokit.misalignment", 1, {}, {})
    with pytest.raises(MemoryFileError, match="not a pixel result"):
        type(r).load(tmp_path / "other.safetensors")
    # the right kind, but the points do not match the tokens: an error naming the file, not a crash later
    save_result(tmp_path / "odd.safetensors", "egokit.pixel_result", 1,
                {"token_points": torch.zeros(1, 2, 2), "token_ids": torch.zeros(3, dtype=torch.long)},
                {**r._meta(), "tokens": ["a", "b", "c"]})
    with pytest.raises(MemoryFileError, match="inconsistent pixel result"):
        type(r).load(tmp_path / "odd.safetensors")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
