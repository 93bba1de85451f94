"""The capture engine on small stand-alone transformers models: exact, gradient-exact, and leaves no trace."""

import copy

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

from egokit.capture.engine import capture, require_attentions
from egokit.errors import CaptureError


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(copy.deepcopy(cfg)).eval()
    ids = torch.randint(3, 100, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in row 1
    return model, ids, mask, [layer.self_attn for layer in model.model.layers]


def eager_attentions(model, **inputs):
    model.set_attn_implementation("eager")
    try:
        return model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")


def test_rows_and_columns_equal_eager(llama):
    model, ids, mask, modules = llama
    with torch.no_grad(), capture(modules, layers=[0, -1], queries=[5, 19], keys=list(range(4, 12))) as cap:
        model(input_ids=ids, attention_mask=mask)
        ref = eager_attentions(model, input_ids=ids, attention_mask=mask).attentions
    assert sorted(cap.attentions) == [0, 2]
    for layer in (0, 2):
        expected = ref[layer][:, :, [5, 19]][..., 4:12]
        assert cap[layer].shape == (2, 4, 2, 8)
        torch.testing.assert_close(cap[layer], expected, atol=1e-5, rtol=0)
    with pytest.raises(CaptureError, match="not captured"):
        cap[1]


def test_rows_are_normalised_over_all_keys(llama):
    model, ids, mask, modules = llama
    with torch.no_grad(), capture(modules, queries=[7]) as cap:
        model(input_ids=ids, attention_mask=mask)
    for layer in range(3):
        torch.testing.assert_close(cap[layer].sum(-1), torch.ones(2, 4, 1))


def test_causal_without_mask_and_per_row_queries(llama):
    model, ids, _, modules = llama
    queries = torch.tensor([[3, 10], [0, 19]])
    with torch.no_grad(), capture(modules, queries=queries) as cap:
        model(input_ids=ids)
    ref = eager_attentions(model, input_ids=ids).attentions
    for layer in range(3):
        expected = torch.stack([ref[layer][b][:, queries[b]] for b in range(2)])
        torch.testing.assert_close(cap[layer], expected, atol=1e-5, rtol=0)


def test_gradients_equal_eager(llama):
    model, ids, mask, modules = llama
    out = eager_attentions(model, input_ids=ids, attention_mask=mask)
    for a in out.attentions:
        a.retain_grad()
    out.logits[:, -1, 7].sum().backward()
    expected = [a.grad[:, :, [5, 19]][..., 4:12] for a in out.attentions]
    model.zero_grad()
    with capture(modules, queries=[5, 19], keys=list(range(4, 12)), grad=True) as cap:
        out2 = model(input_ids=ids, attention_mask=mask)
    out2.logits[:, -1, 7].sum().backward()
    model.zero_grad()
    assert any(e.abs().max() > 1e-4 for e in expected)  # the check below is not vacuous
    for layer in range(3):
        torch.testing.assert_close(cap.grads[layer], expected[layer], atol=1e-5, rtol=1e-4)
    real = mask.bool()  # padded positions are fully masked rows: undefined in any backend
    torch.testing.assert_close(out2.logits[real], out.logits[real], atol=1e-5, rtol=0)


def test_grads_before_backward_is_a_clear_error(llama):
    model, ids, mask, modules = llama
    with capture(modules, queries=[1], grad=True) as cap:
        model(input_ids=ids, attention_mask=mask)
    with pytest.raises(CaptureError, match="backward"):
        _ = cap.grads


def test_outputs_bit_identical_during_and_after(llama):
    model, ids, mask, modules = llama
    configs = {id(m.config): m.config._attn_implementation for m in modules}
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        with capture(modules, queries=[2, 3]):
            during = model(input_ids=ids, attention_mask=mask).logits
        after = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(before, during) and torch.equal(before, after)
    assert {id(m.config): m.config._attn_implementation for m in modules} == configs


def test_restored_when_the_body_raises(llama):
    model, ids, mask, modules = llama
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    with pytest.raises(RuntimeError, match="inside"), capture(modules, queries=[1]):
        raise RuntimeError("inside")
    assert all(m.config._attn_implementation == "sdpa" for m in modules)
    from egokit.capture import engine

    assert not engine._ACTIVE
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)
    # and a second capture works afterwards
    with torch.no_grad(), capture(modules, queries=[1]) as cap:
        model(input_ids=ids, attention_mask=mask)
    assert len(cap.attentions) == 3


def test_bad_arguments(llama):
    model, ids, mask, modules = llama
    with pytest.raises(CaptureError, match="does not exist"), capture(modules, layers=[3]):
        pass
    with torch.no_grad(), pytest.raises(CaptureError, match="outside"), capture(modules, queries=[40]):
        model(input_ids=ids, attention_mask=mask)
    assert all(m.config._attn_implementation == "sdpa" for m in modules)


def test_decoding_with_cache_records_absolute_positions(llama):
    model, ids, _, modules = llama
    prompt = ids[:1, :12]
    with torch.no_grad(), capture(modules, layers=[1], queries=[14]) as cap:
        model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        full = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)
        ref = eager_attentions(model, input_ids=full[:, :15]).attentions[1][:, :, [14]]
    torch.testing.assert_close(cap[1], ref, atol=1e-5, rtol=0)


def test_clip_text_and_vision():
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": 99, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 16, "bos_token_id": 97,
                     "eos_token_id": 98, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    ids = torch.randint(2, 97, (2, 10))
    ids[:, -1] = 98
    mask = torch.ones_like(ids)
    pixels = torch.randn(2, 3, 32, 32)
    text_mods = [layer.self_attn for layer in model.text_model.encoder.layers]
    vision_mods = [layer.self_attn for layer in model.vision_model.encoder.layers]
    with torch.no_grad(), capture(text_mods, queries=[9]) as t, capture(vision_mods, queries=[0], keys=list(range(1, 17))) as v:
        model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    model.set_attn_implementation("eager")
    ref = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, output_attentions=True)
    model.set_attn_implementation("sdpa")
    for layer in range(2):
        torch.testing.assert_close(t[layer], ref.text_model_output.attentions[layer][:, :, [9]], atol=1e-5, rtol=0)
        torch.testing.assert_close(v[layer], ref.vision_model_output.attentions[layer][:, :, [0], 1:17],
                                   atol=1e-5, rtol=0)


def test_require_attentions_names_the_backend():
    with pytest.raises(CaptureError, match="sdpa"):
        require_attentions((), "sdpa")
    assert len(require_attentions((torch.zeros(1),), "eager")) == 1


def test_nothing_captured_names_the_backend(llama):
    _, _, _, modules = llama
    with capture(modules, queries=[1]) as cap:
        pass  # the model never ran inside the block
    with pytest.raises(CaptureError, match="nothing was captured.*sdpa"):
        cap[0]


# ------------------------------------------------------------------------------------------ leaves no trace


def logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def assert_untouched(model, modules, ids, mask, before):
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from egokit.capture import engine

    assert all(m.config._attn_implementation == "sdpa" for m in modules)
    assert not engine._ACTIVE and not engine._SWITCHED
    assert engine.registered_names() == []
    assert not [n for n in ALL_ATTENTION_FUNCTIONS if n.startswith("egokit:")]
    assert not [n for n in ALL_MASK_ATTENTION_FUNCTIONS if n.startswith("egokit:")]
    assert torch.equal(logits(model, ids, mask), before)


def test_two_captures_on_one_model_exit_out_of_order(llama):
    model, ids, mask, modules = llama
    before = logits(model, ids, mask)
    first = capture(modules, layers=[0], queries=[4])
    second = capture(modules, layers=[1], queries=[4])
    cap_first = first.__enter__()
    cap_second = second.__enter__()
    first.__exit__(None, None, None)  # the first one leaves while the second is still open
    assert all(m.config._attn_implementation == "egokit:sdpa" for m in modules)
    assert torch.equal(logits(model, ids, mask), before)  # the second capture still records, exactly
    second.__exit__(None, None, None)
    assert sorted(cap_second.attentions) == [1] and cap_second.calls == {1: 1}
    assert cap_first.attentions == {}
    assert_untouched(model, modules, ids, mask, before)


def test_nested_captures_record_and_restore(llama):
    model, ids, mask, modules = llama
    before = logits(model, ids, mask)
    with torch.no_grad(), capture(modules, layers=[0], queries=[2]) as outer:
        with capture(modules, layers=[2], queries=[2]) as inner:
            during = model(input_ids=ids, attention_mask=mask).logits
        after_inner = model(input_ids=ids, attention_mask=mask).logits
        assert all(m.config._attn_implementation == "egokit:sdpa" for m in modules)
    assert torch.equal(during, before) and torch.equal(after_inner, before)
    assert outer.calls == {0: 2} and inner.calls == {2: 1}
    assert_untouched(model, modules, ids, mask, before)


@pytest.mark.parametrize("error", [RuntimeError("inside"), KeyboardInterrupt()])
def test_error_or_interrupt_in_nested_block_restores(llama, error):
    model, ids, mask, modules = llama
    before = logits(model, ids, mask)
    with pytest.raises(type(error)), torch.no_grad(), capture(modules, layers=[0], queries=[1]):
        with capture(modules, layers=[1, 2], queries=[1]):
            model(input_ids=ids, attention_mask=mask)
            raise error
    assert_untouched(model, modules, ids, mask, before)


def test_two_models_at_once(llama):
    model, ids, mask, modules = llama
    torch.manual_seed(1)
    other = LlamaForCausalLM(copy.deepcopy(model.config)).eval()
    other_modules = [layer.self_attn for layer in other.model.layers]
    before, other_before = logits(model, ids, mask), logits(other, ids, mask)
    a = capture(modules, layers=[0], queries=[3])
    b = capture(other_modules, layers=[0], queries=[3])
    cap_a, cap_b = a.__enter__(), b.__enter__()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)
        assert torch.equal(other(input_ids=ids, attention_mask=mask).logits, other_before)
    a.__exit__(None, None, None)
    assert all(m.config._attn_implementation == "sdpa" for m in modules)
    assert all(m.config._attn_implementation == "egokit:sdpa" for m in other_modules)
    b.__exit__(None, None, None)
    assert cap_a.calls == {0: 1} and cap_b.calls == {0: 1}
    assert not torch.equal(cap_a[0], cap_b[0])  # each capture saw its own model
    assert_untouched(model, modules, ids, mask, before)
    assert_untouched(other, other_modules, ids, mask, other_before)


def test_switches_through_the_public_setter(monkeypatch):
    """With a model, the engine asks the sub-model that owns each config (`set_attn_implementation`)."""
    from egokit.models.loading import from_model
    from egokit.models.tiny import build_tiny

    model, processor = build_tiny("llava")
    loaded = from_model(model, processor)
    language = model.model.language_model
    calls = []
    original = type(language).set_attn_implementation

    def spy(self, impl, *args, **kwargs):
        calls.append((type(self).__name__, impl))
        return original(self, impl, *args, **kwargs)

    monkeypatch.setattr(type(language), "set_attn_implementation", spy)
    with capture(loaded, part="language"):
        assert language.config._attn_implementation == "egokit:sdpa"
        assert model.config.vision_config._attn_implementation == "sdpa"  # only the captured part switches
    assert calls == [(type(language).__name__, "egokit:sdpa"), (type(language).__name__, "sdpa")]
    assert language.config._attn_implementation == "sdpa"


def test_engine_does_not_write_private_config_fields():
    import inspect

    from egokit.capture import engine

    assert "_attn_implementation_internal" not in inspect.getsource(engine)
