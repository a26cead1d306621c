//! Where the next candidate comes from: random search (which the paper names beside
//! reinforcement learning) or regularized evolution (Real et al. 2019: a tournament among the
//! newest candidates picks a parent, a one-choice mutation of it is the child).

use std::collections::HashSet;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::results::Record;
use super::space::{Candidate, SearchSpace};

/// Draws before a sampler gives up looking for a candidate not yet evaluated.
const FRESH_ATTEMPTS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sampler {
    Random,
    Evolution {
        /// The newest scored candidates the tournament draws from (older ones age out).
        population: usize,
        /// Candidates drawn per tournament; the one with the best reward is the parent.
        tournament: usize,
    },
}

impl Sampler {
    /// Regularized evolution with a population of 10 and tournaments of 3.
    pub const EVOLUTION: Sampler = Sampler::Evolution {
        population: 10,
        tournament: 3,
    };

    /// Candidate `index` of the search seeded with `seed`, after `history`. Random search
    /// depends on the seed and index alone; evolution also on the rewards in `history`. A
    /// candidate already evaluated is drawn again (up to a bound) so that none repeats.
    pub fn propose(
        &self,
        space: &SearchSpace,
        seed: u64,
        index: usize,
        history: &[Record],
    ) -> Candidate {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let seen: HashSet<&Candidate> = history.iter().map(|r| &r.candidate).collect();
        let scored: Vec<(&Candidate, f64)> = history
            .iter()
            .filter_map(|r| Some((&r.candidate, r.reward()?)))
            .collect();
        let draw = |rng: &mut ChaCha8Rng| match *self {
            Sampler::Evolution {
                population,
                tournament,
            } if scored.len() >= population.max(1) => {
                let newest = &scored[scored.len() - population.max(1)..];
                let picks = sample(rng, newest.len(), tournament.clamp(1, newest.len()));
                let parent = picks
                    .iter()
                    .map(|i| newest[i])
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("at least one pick")
                    .0;
                space.mutate(parent, rng)
            }
            _ => space.sample(rng),
        };
        let mut candidate = draw(&mut rng);
        for _ in 0..FRESH_ATTEMPTS {
            if !seen.contains(&candidate) {
                break;
            }
            candidate = draw(&mut rng);
        }
        candidate
    }
}
