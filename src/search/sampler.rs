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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::results::{Outcome, Score};

    fn scored(index: usize, candidate: Candidate, reward: f64) -> Record {
        Record {
            index,
            name: format!("c{index}"),
            candidate,
            outcome: Outcome::Scored(Score {
                accuracy: reward,
                step_seconds: 1.0,
                backbone_step_seconds: Some(1.0),
                params: 1,
                reward,
            }),
            seconds: 0.0,
            accuracy_from: None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_candidates_and_none_repeats() {
        let space = SearchSpace::load("tiny").unwrap();
        let draw = |seed| -> Vec<Candidate> {
            (1..=20)
                .map(|i| Sampler::Random.propose(&space, seed, i, &[]))
                .collect()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut history = Vec::new();
        for i in 1..=30 {
            let candidate = Sampler::Random.propose(&space, 7, i, &history);
            assert!(history.iter().all(|r: &Record| r.candidate != candidate));
            history.push(scored(i, candidate, 0.5));
        }
    }

    #[test]
    fn evolution_mutates_a_tournament_winner_once_the_population_is_full() {
        let space = SearchSpace::load("tiny").unwrap();
        let evolution = Sampler::Evolution {
            population: 4,
            tournament: 4,
        };
        let mut history: Vec<Record> = (1..=4)
            .map(|i| {
                scored(
                    i,
                    Sampler::Random.propose(&space, 1, i, &[]),
                    i as f64 / 10.0,
                )
            })
            .collect();
        // With the whole population in the tournament the parent is the best (index 4).
        let child = evolution.propose(&space, 1, 5, &history);
        let parent = &history[3].candidate;
        let differences = parent
            .stages
            .iter()
            .zip(&child.stages)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differences, 1, "{parent:?} -> {child:?}");
        // Fewer scored candidates than the population: random draws.
        history.truncate(2);
        assert_eq!(
            evolution.propose(&space, 1, 3, &history),
            Sampler::Random.propose(&space, 1, 3, &history)
        );
    }
}
