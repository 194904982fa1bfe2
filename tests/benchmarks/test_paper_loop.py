"""The paper-loop baseline picks exactly our global-mining negatives; the FLOP formula is right."""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import bench_vs_paper
from benchmarks.paper_loop import IdLists, PaperLoop, pick_negatives
from trainer import features
from trainer.config import TrainerConfig
from trainer.inputs.data import SplitTables
from trainer.model import towers

NUM_IMAGES, CAPTIONS_PER_IMAGE, IMAGE_DIM, CAPTION_DIM = 10, 5, 8, 6


def _ids(image_names, caption_image):
    """Hand-made id lists: captions are named IMAGE#N in order."""
    caption_ids, seen = [], {}
    for image in caption_image:
        caption_ids.append(f"{image}#{seen.get(image, 0)}")
        seen[image] = seen.get(image, 0) + 1
    captions_of = {}
    for caption, image in zip(caption_ids, caption_image, strict=True):
        captions_of.setdefault(image, []).append(caption)
    return IdLists(list(image_names), caption_ids, list(caption_image), captions_of)


def test_pick_negatives_hand_computed():
    ids = _ids("abc", ["a", "a", "b", "c", "c"])
    # pair 0 = (image a, caption a#1), pair 1 = (image c, caption c#0)
    caption_to_images = np.array([[0.9, 0.2, 0.5], [0.1, 0.3, 0.8]])
    image_to_captions = np.array([[0.9, 0.8, 0.1, 0.7, 0.2], [0.4, 0.6, 0.3, 0.95, 0.9]])
    negatives = pick_negatives(caption_to_images, image_to_captions, ["a", "c"], ids)
    np.testing.assert_array_equal(negatives.image_index, [2, 1])  # c for a#1, b for c#0
    np.testing.assert_array_equal(negatives.text_index, [3, 1])  # c#0 for a, a#1 for c
    np.testing.assert_array_equal(negatives.is_pair, [True, False])  # (c, c#0) is a pair


def test_pick_negatives_ties_go_to_the_lowest_row():
    ids = _ids("abc", ["a", "b", "c"])
    negatives = pick_negatives(np.array([[0.9, 0.5, 0.5]]), np.array([[0.9, 0.3, 0.3]]), ["a"],
                               ids)
    assert negatives.image_index[0] == 1  # b, not c
    assert negatives.text_index[0] == 1  # b#0, not c#0
    assert negatives.is_pair[0]


def _split(seed: int) -> SplitTables:
    rng = np.random.default_rng(seed)
    caption_image = np.repeat(np.arange(NUM_IMAGES), CAPTIONS_PER_IMAGE)
    image_names = [f"img{i}.jpg" for i in range(NUM_IMAGES)]
    return SplitTables(
        image_features=rng.normal(size=(NUM_IMAGES, IMAGE_DIM)).astype(np.float32),
        image_ids=np.array([name.encode() for name in image_names], dtype=object),
        text={features.CAPTION_FEATURES_XF:
              rng.normal(size=(len(caption_image), CAPTION_DIM)).astype(np.float32)},
        text_image_index=caption_image.astype(np.int64),
        caption_ids=np.array([f"{image_names[i]}#{n % CAPTIONS_PER_IMAGE}".encode()
                              for n, i in enumerate(caption_image)], dtype=object),
    )


@pytest.fixture(params=[16, IMAGE_DIM])
def loops(request):
    """The paper's loop and our exact-mode trainer sharing one pair of tiny linear towers.

    With d = 16 both modalities are scored in their input spaces; with d = IMAGE_DIM the images
    are scored through their products x @ W and the image queries read from them (Flickr8k's
    case: 1280 -> 1024).
    """
    config = TrainerConfig(mining="global", refresh_steps=1, mining_chunk_size=7,
                           image_tower="linear", text_tower="linear",
                           embedding_dim=request.param, batch_size=8, eval_batch_size=16)
    split = _split(seed=3)
    image_tower, text_tower = towers.build_towers(config, 0, IMAGE_DIM, CAPTION_DIM)
    paper = PaperLoop(image_tower, text_tower, split, learning_rate=0.05)
    ours = bench_vs_paper.make_trainer(config, image_tower, text_tower, split, steps_per_epoch=6)
    assert ours.strategy.miner.has_image_products == (request.param == IMAGE_DIM)
    return paper, ours, split


def test_paper_loop_and_global_mining_pick_identical_negatives(loops):
    paper, ours, split = loops
    batches = bench_vs_paper.epoch_batches(split.num_captions, 8, seed=0)
    assert len(batches) == 6
    flags = []
    for caption_index in batches[:4]:
        theirs = paper.negatives(caption_index)
        mined = bench_vs_paper.our_negatives(ours, caption_index)
        np.testing.assert_array_equal(theirs.image_index, mined.image_index)
        np.testing.assert_array_equal(theirs.text_index, mined.text_index)
        np.testing.assert_array_equal(theirs.is_pair, mined.is_pair)
        image_of_batch = split.text_image_index[caption_index]
        assert np.all(theirs.image_index != image_of_batch)
        assert np.all(split.text_image_index[theirs.text_index] != image_of_batch)
        flags.extend(theirs.is_pair)
        paper.train_step(caption_index)  # the towers move between comparisons
    totals = bench_vs_paper.compare_negatives(paper, ours, batches[4:])
    assert totals == {"queries": 32, "identical": 32, "pair_flags_identical": 16,
                      "max_gap": 0.0}


def test_paper_loop_step_updates_both_towers(loops):
    paper, _, _ = loops
    before = [v.numpy().copy() for v in paper.image_tower.trainable_variables
              + paper.text_tower.trainable_variables]
    negatives, loss = paper.train_step(np.arange(8))
    assert negatives.image_index.shape == (8,)
    assert np.isfinite(loss) and loss > 0
    after = paper.image_tower.trainable_variables + paper.text_tower.trainable_variables
    for old, new in zip(before, after, strict=True):
        assert not np.allclose(old, new.numpy())


def test_mining_step_flops_hand_computed():
    # 2 images x D=4, 3 captions x Dc=5, d=3, B=2:
    # encode 2*3*(2*4 + 3*5) = 138; score 2*2*3*(2 + 3) = 60
    assert bench_vs_paper.mining_step_flops(2, 3, 4, 5, 3, 2) == 198


def test_mining_step_flops_flickr8k_matches_the_issue():
    flops = bench_vs_paper.mining_step_flops(6000, 30000, 1280, 384, 1024, 512)
    assert flops == 2 * 1024 * (6000 * 1280 + 30000 * 384) + 2 * 512 * 1024 * 36000
    assert flops / 1e9 == pytest.approx(77.0, abs=0.1)


def test_mining_step_flops_counts_the_matmuls_it_claims():
    image, text = tf.ones([6, 4]), tf.ones([9, 5])
    w_image, w_text, queries = tf.ones([4, 3]), tf.ones([5, 3]), tf.ones([2, 3])
    shapes = [(image, w_image), (text, w_text), (queries, tf.transpose(tf.matmul(image, w_image))),
              (queries, tf.transpose(tf.matmul(text, w_text)))]
    counted = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in shapes)
    assert bench_vs_paper.mining_step_flops(6, 9, 4, 5, 3, 2) == counted


def test_our_mining_flops_score_a_narrow_linear_head_in_its_input_space():
    # 2 images x D=4 (>= d=3: encoded and scored, 2*3*2*(4 + 2) = 72), 3 captions x Dc=2
    # (< d: queries 2*2*3*2 = 24, Gram 2*2*2*3 = 24, scores 2*2*2*3 = 24, norms through the
    # factor's blocks [2, 1] and [1, 1]: 2*3*(2*1 + 1*1) = 18).
    assert bench_vs_paper.mining_step_flops(2, 3, 4, 2, 3, 2, ours=True) == 72 + 90
    # one distinct batch image: queries and scores of the caption side halve (12 + 24 + 18 + 12)
    assert bench_vs_paper.mining_step_flops(2, 3, 4, 2, 3, 2, ours=True,
                                            image_queries=1) == 72 + 66
    assert bench_vs_paper.mining_step_flops(2, 3, 4, 2, 3, 2) == 2 * 3 * (2 * 4 + 3 * 2) + 60
