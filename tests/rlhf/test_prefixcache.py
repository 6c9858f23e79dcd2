"""The prompt KV cache of frozen models (PPO's reference, the reward models): a cached prompt
gives what a full forward gives, each prompt is read once, and the cache stays in its budget."""

import pytest
import torch

from modelruntime.prefixcache import PrefixCache

SEQUENCES = [list(range(300, 300 + n)) for n in (12, 17, 9, 14)]
SPLITS = [8, 3, 0, 13]  # the third row has no prefix; the last keeps one token after it


def full_hidden(model, sequence):
    with torch.inference_mode():
        return model.get_decoder()(input_ids=torch.tensor([sequence])).last_hidden_state[0]


def run(cache, model, splits=SPLITS, sequences=SEQUENCES):
    with torch.inference_mode():
        return cache.run(model.get_decoder(), [s[:k] for s, k in zip(sequences, splits)],
                         [s[k:] for s, k in zip(sequences, splits)])


def test_a_cached_prompt_gives_the_hidden_states_of_a_full_forward(tiny_lm):
    model, _ = tiny_lm
    cache = PrefixCache()

    for _ in range(2):  # the second call reads every prompt from the cache
        hidden, mask = run(cache, model)
        for row, (sequence, split) in enumerate(zip(SEQUENCES, SPLITS)):
            suffix = len(sequence) - split
            assert mask[row].tolist() == [1] * suffix + [0] * (mask.shape[1] - suffix)
            torch.testing.assert_close(hidden[row, :suffix], full_hidden(model, sequence)[split:],
                                       atol=1e-4, rtol=1e-4)
    assert (cache.misses, cache.hits) == (3, 3)  # three rows with a prompt: computed once, then found


def test_the_cache_drops_the_least_recently_used_prompt_to_stay_in_its_budget(tiny_lm):
    model, _ = tiny_lm
    probe = PrefixCache()
    run(probe, model, [8], [SEQUENCES[0]])
    per_token = probe.bytes // 8
    cache = PrefixCache(max_bytes=per_token * 20)  # room for two 8-token prompts, not three
    a, b, c = ([base + i for i in range(10)] for base in (500, 600, 700))

    run(cache, model, [8, 8], [a, b])
    run(cache, model, [8], [a])  # a is now the most recently used
    run(cache, model, [8], [c])  # so b goes

    assert cache.bytes <= cache.max_bytes
    assert set(cache.entries) == {tuple(a[:8]), tuple(c[:8])}
    misses = cache.misses
    run(cache, model, [8], [b])
    assert cache.misses == misses + 1


def test_a_row_with_nothing_after_its_prompt_is_refused(tiny_lm):
    model, _ = tiny_lm
    with pytest.raises(ValueError, match="at least one token after its prefix"):
        run(PrefixCache(), model, [12], [SEQUENCES[0]])
