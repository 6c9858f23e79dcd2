"""The model store: atomic checkpoints, loading for generation, and the converted default model."""

import threading

import pytest
from transformers import AutoTokenizer

from modelruntime.modelstore import (
    DEFAULT_MODEL_NAME,
    MARKER_NAME,
    ModelStoreError,
    checkpoint_is_complete,
    clear_policy_cache,
    default_model_dir,
    load_policy,
    load_policy_cached,
    read_metadata,
    save_checkpoint,
)
from rlhf.generation import SamplingConfig, generate_responses

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=16)


def test_saved_checkpoint_reloads_with_its_metadata_and_answers_the_same(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm

    path = save_checkpoint(model, tokenizer, tmp_path / "policy-v1", {"name": "policy-v1", "source": "test"})
    reloaded, reloaded_tokenizer = load_policy(path)

    assert checkpoint_is_complete(path)
    assert read_metadata(path)["name"] == "policy-v1"
    assert read_metadata(path)["source"] == "test"
    assert "created_at" in read_metadata(path)
    assert generate_responses(reloaded, reloaded_tokenizer, [QUESTION], GREEDY) == generate_responses(
        model, tokenizer, [QUESTION], GREEDY
    )


def test_directory_without_marker_is_incomplete_and_the_next_save_replaces_it(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    crashed = tmp_path / "policy-v2"
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"half a checkpoint")

    assert not checkpoint_is_complete(crashed)
    with pytest.raises(ModelStoreError, match=MARKER_NAME):
        load_policy(crashed)

    save_checkpoint(model, tokenizer, crashed, {"name": "policy-v2"})

    assert checkpoint_is_complete(crashed)
    load_policy(crashed)


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_debris(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    dest = save_checkpoint(model, tokenizer, tmp_path / "policy", {"name": "first"})

    class DiskFullTokenizer:
        def save_pretrained(self, path):
            raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        save_checkpoint(model, DiskFullTokenizer(), dest, {"name": "second"})

    assert read_metadata(dest)["name"] == "first"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["policy"]


def test_concurrent_saves_of_one_checkpoint_leave_one_complete_copy(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    dest = tmp_path / "policy"
    errors = []

    def save(name):
        try:
            save_checkpoint(model, tokenizer, dest, {"name": name})
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=save, args=(f"writer-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert read_metadata(dest)["name"] in {"writer-0", "writer-1", "writer-2"}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["policy"]


def test_loaded_tokenizer_pads_on_the_left_with_a_pad_token(tiny_lm, tiny_model_dir, tmp_path):
    model, _ = tiny_lm
    no_pad = AutoTokenizer.from_pretrained(tiny_model_dir)
    no_pad.pad_token = None
    path = save_checkpoint(model, no_pad, tmp_path / "no-pad", {"name": "no-pad"})

    _, loaded = load_policy(path)

    assert loaded.padding_side == "left"
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"


def test_a_worker_loads_each_policy_once_until_it_is_rewritten(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    path = save_checkpoint(model, tokenizer, tmp_path / "policy", {"name": "v1"})
    clear_policy_cache()

    first = load_policy_cached(path)
    assert load_policy_cached(tmp_path / "." / "policy") is first

    save_checkpoint(model, tokenizer, path, {"name": "v1-retrained"})
    assert load_policy_cached(path) is not first
    clear_policy_cache()


@pytest.fixture(scope="session")
def converted_store(tmp_path_factory):
    """A fresh store holding the default model, converted from the packaged GGUF (~35 s on CPU)."""
    store = tmp_path_factory.mktemp("store")
    debris = store / "base" / DEFAULT_MODEL_NAME
    debris.mkdir(parents=True)
    (debris / "config.json").write_text("{}")  # left by a conversion that crashed
    default_model_dir(store)
    return store


@pytest.mark.slow
def test_default_model_is_converted_once_and_knows_the_capital_of_france(converted_store):
    path = default_model_dir(converted_store)
    created_at = read_metadata(path)["created_at"]
    model, tokenizer = load_policy(path)

    answer = generate_responses(model, tokenizer, [QUESTION], GREEDY)[0]

    assert "Paris" in answer
    assert read_metadata(path)["name"] == DEFAULT_MODEL_NAME
    assert default_model_dir(converted_store) == path
    assert read_metadata(path)["created_at"] == created_at  # not converted a second time


@pytest.mark.slow
def test_reloaded_default_model_gives_the_same_greedy_answer(converted_store):
    path = default_model_dir(converted_store)
    first = generate_responses(*load_policy(path), [QUESTION], GREEDY)

    again = generate_responses(*load_policy(path), [QUESTION], GREEDY)

    assert again == first


@pytest.mark.slow
def test_default_model_response_stops_at_max_new_tokens(converted_store):
    model, tokenizer = load_policy(default_model_dir(converted_store))
    story = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]

    answer = generate_responses(model, tokenizer, [story], SamplingConfig(temperature=0, max_new_tokens=8))[0]

    assert 0 < len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 8


@pytest.mark.slow
def test_default_model_reads_a_cached_prompt_as_a_full_forward_does(converted_store):
    """The prompt KV cache that PPO's reference and the reward models use, on SmolLM2 itself."""
    import torch

    from modelruntime.prefixcache import PrefixCache
    from rlhf.generation import sample_responses
    from rlhf.ppo import policy_forward, rollout_batch

    model, tokenizer = load_policy(default_model_dir(converted_store))
    prompts = [QUESTION, [{"role": "user", "content": "Name a colour of the sky at dusk."}]]
    samples = [s for per in sample_responses(model, tokenizer, prompts, GREEDY, k=2) for s in per]
    batch = rollout_batch(samples, tokenizer.pad_token_id)
    cache = PrefixCache()

    with torch.inference_mode():
        expected = policy_forward(model, None, batch)[0]
        hidden, mask = cache.run(model.get_decoder(), [s.prompt_ids[:-1] for s in samples],
                                 [s.prompt_ids[-1:] + s.response_ids[:-1] for s in samples])
        logits = model.get_output_embeddings()(hidden).float()
        cached = torch.log_softmax(logits, -1).gather(-1, batch.response_ids.unsqueeze(-1)).squeeze(-1)

    response = batch.response_mask.bool()
    torch.testing.assert_close(cached[response], expected[response], atol=1e-4, rtol=1e-4)
    assert (cache.misses, cache.hits) == (2, 2)  # two prompts, each read once for its two responses
