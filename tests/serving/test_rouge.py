import numpy as np
import pytest

from serving import rouge


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a b c d", "a c d", 3),
        ("a b", "b a", 1),
        ("", "a b", 0),
        ("a b c b d a b", "b d c a b a", 4),  # CLRS 15.4
        ("x y z", "p q", 0),
    ],
)
def test_lcs_hand_computed(a, b, expected):
    assert rouge.lcs_length(a.split(), b.split()) == expected
    assert rouge.lcs_length(b.split(), a.split()) == expected


def test_rouge_l_hand_computed():
    # ref 1: LCS 2 -> P 2/3, R 2/4; ref 2: LCS 2 -> P 2/3, R 1. Best P 2/3, best R 1.
    got = rouge.rouge_l("A dog runs.", ["a dog is running", "Dog runs"])
    precision, recall = 2 / 3, 1.0
    want = (1 + 1.2**2) * precision * recall / (recall + 1.2**2 * precision)
    assert got == pytest.approx(want)
    assert got == pytest.approx(0.829932, abs=1e-6)


def test_rouge_l_identical_disjoint_and_empty():
    assert rouge.rouge_l("Two dogs, playing!", ["two DOGS playing"]) == 1.0
    assert rouge.rouge_l("a cat", ["the dog"]) == 0.0
    assert rouge.rouge_l("...", ["the dog"]) == 0.0
    with pytest.raises(ValueError, match="at least one reference"):
        rouge.rouge_l("a cat", [])


def test_popcount():
    words = np.array([0, 1, 2**63, 2**64 - 1, 0b1011], dtype=np.uint64)
    np.testing.assert_array_equal(rouge.popcount(words), [0, 1, 1, 64, 3])


def _random_caption(rng, n_words, vocab=12):
    return " ".join(f"w{rng.integers(vocab)}" for _ in range(n_words))


def test_bit_parallel_and_wide_lcs_match_the_plain_dp_including_64_words():
    rng = np.random.default_rng(0)
    queries = [rng.integers(1, 6, size=n) for n in (0, 1, 5, 17, 63, 64)]
    ref_list = [rng.integers(1, 6, size=n) for n in (70, 30, 8, 3, 1, 0)]  # longest first
    lengths = np.array([len(r) for r in ref_list])
    refs = np.zeros((len(ref_list), lengths.max()), dtype=np.int64)
    for row, ref in enumerate(ref_list):
        refs[row, : len(ref)] = ref
    got = rouge.bit_parallel_lcs(queries, refs, lengths, num_ids=6)
    want = [[rouge.lcs_length(list(r), list(q)) for q in queries] for r in ref_list]
    np.testing.assert_array_equal(got, want)
    for i, q in enumerate(queries):
        np.testing.assert_array_equal(rouge.wide_lcs(q, refs, lengths), got[:, i])
    for n in (65, 130, 500):
        query = rng.integers(1, 7, size=n)  # 6 is in no reference
        np.testing.assert_array_equal(rouge.wide_lcs(query, refs, lengths),
                                      [rouge.lcs_length(list(r), list(query)) for r in ref_list])


def test_scorer_matches_reference_rouge_l():
    rng = np.random.default_rng(1)
    references = [_random_caption(rng, n) for n in (3, 9, 4, 12, 7, 5, 80)]
    image_index = [2, 0, 1, 0, 2, 1, 1]
    queries = references + [_random_caption(rng, n, vocab=15) for n in (6, 70, 1)] + ["", "zz"]
    scorer = rouge.RelevanceScorer(references, image_index)
    got = scorer.score(queries, chunk=4)
    groups = [[r for r, i in zip(references, image_index, strict=True) if i == j]
              for j in range(3)]
    want = [[rouge.rouge_l(q, refs) for refs in groups] for q in queries]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert scorer.long_queries == 2  # the 80- and 70-word queries took wide_lcs
    assert got.dtype == np.float32 and got.shape == (len(queries), 3)


def test_scorer_rejects_image_without_reference():
    with pytest.raises(ValueError, match="at least one reference caption"):
        rouge.RelevanceScorer(["a b", "c d"], [0, 2])


def test_a_20000_character_caption_costs_at_most_max_tokens_squared_bit_steps_per_pair(
        monkeypatch):
    """The LCS work of every (query, reference) pair is bounded, whatever a caption's length.

    The work is counted, not timed: for each pair, both LCS paths step once per reference word
    on a bit-vector as wide as the query (one uint64 for at most 64 words).
    """
    long_caption = " ".join(f"w{i % 50:02d}" for i in range(5000))
    assert len(long_caption) == 19_999
    references = [long_caption, "w01 w02 w03", "w04 w05 w03 w01 w07"]
    per_pair = []
    real_wide, real_bits = rouge.wide_lcs, rouge.bit_parallel_lcs

    def counted_wide(query, refs, ref_lengths):
        per_pair.extend(len(query) * int(n) for n in ref_lengths)
        return real_wide(query, refs, ref_lengths)

    def counted_bits(query_ids, refs, ref_lengths, num_ids):
        per_pair.extend(rouge.WORD_BITS * int(n) for n in ref_lengths for _ in query_ids)
        return real_bits(query_ids, refs, ref_lengths, num_ids)

    monkeypatch.setattr(rouge, "wide_lcs", counted_wide)
    monkeypatch.setattr(rouge, "bit_parallel_lcs", counted_bits)
    scorer = rouge.RelevanceScorer(references, [0, 1, 1])
    queries = [long_caption, "w01 w03", long_caption + " w09"]
    got = scorer.score(queries)
    assert len(per_pair) == 3 * len(references)
    assert max(per_pair) == rouge.MAX_TOKENS ** 2  # a cut query against the cut reference
    assert scorer.cut_queries == 2 and scorer.long_queries == 2
    assert rouge.rouge_tokens(long_caption) == long_caption.split()[:rouge.MAX_TOKENS]
    want = [[rouge.rouge_l(q, references[:1]), rouge.rouge_l(q, references[1:])] for q in queries]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[0, 0] == got[2, 0] == 1.0  # both are cut to the same first 500 words
