//! The order of a shuffled epoch over TFRecord shards, as `tf.data` reads them for TPU training.

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::Rng;

/// Shards a shuffled epoch reads at the same time (the `cycle_length` of the `interleave` in the
/// official TPU ImageNet input).
pub(super) const INTERLEAVE: usize = 16;
/// Examples in the shuffle buffer of a shuffled epoch.
pub(super) const SHUFFLE_BUFFER: usize = 8192;

/// The order of a shuffled epoch over shards holding `shards` (index ranges), as
/// `tf.data` reads TFRecords for TPU training: the shards in a random order, `interleave` of them
/// read round-robin (a finished one replaced by the next), every record passing through a
/// shuffle buffer of `buffer` examples that emits a random one of those it holds. Every choice
/// comes from `rng`, so the order is a pure function of its seed.
pub(super) fn interleaved_order(
    shards: &[Range<usize>],
    interleave: usize,
    buffer: usize,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let mut files = shards.to_vec();
    files.shuffle(rng);
    let mut pending = files.into_iter();
    let mut active: Vec<Range<usize>> = pending.by_ref().take(interleave.max(1)).collect();
    let total = shards.iter().map(ExactSizeIterator::len).sum();
    let mut order = Vec::with_capacity(total);
    let mut held = Vec::with_capacity(buffer.min(total));
    let mut turn = 0;
    while !active.is_empty() {
        turn %= active.len();
        let Some(index) = active[turn].next() else {
            match pending.next() {
                Some(next) => active[turn] = next,
                None => drop(active.remove(turn)),
            }
            continue;
        };
        turn += 1;
        if held.len() < buffer.max(1) {
            held.push(index);
        } else {
            let slot = rng.gen_range(0..held.len());
            order.push(std::mem::replace(&mut held[slot], index));
        }
    }
    held.shuffle(rng);
    order.extend(held);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn order(shards: &[Range<usize>], interleave: usize, buffer: usize, seed: u64) -> Vec<usize> {
        interleaved_order(
            shards,
            interleave,
            buffer,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
    }

    #[test]
    fn a_shuffled_epoch_is_a_seeded_permutation() {
        let shards = [0..40, 40..45, 45..45, 45..100];
        let first = order(&shards, 2, 8, 1);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(first, order(&shards, 2, 8, 1));
        assert_ne!(first, order(&shards, 2, 8, 2));
    }

    /// Without a buffer the order is the interleave itself: each shard read front to back, two
    /// shards at a time in turns, the next shard taking a finished one's turn.
    #[test]
    fn shards_are_read_in_turns_front_to_back() {
        let shards = [0..3, 3..5, 5..6];
        for seed in 0..8 {
            let read = order(&shards, 2, 1, seed);
            for shard in &shards {
                let positions: Vec<usize> = shard.clone().collect();
                let seen: Vec<usize> = read.iter().copied().filter(|i| shard.contains(i)).collect();
                assert_eq!(seen, positions, "seed {seed}: {read:?}");
            }
            // The first two records come from two different shards.
            let shard_of = |i: usize| shards.iter().position(|s| s.contains(&i)).unwrap();
            assert_ne!(
                shard_of(read[0]),
                shard_of(read[1]),
                "seed {seed}: {read:?}"
            );
        }
    }
}
