//! The search space: a backbone model spec and, for each of its stages, the choices a
//! candidate may make (block type, kernel size, expansion ratio, number of layers), as the
//! EfficientNetV2 paper's training-aware search defines it. Channel widths, strides and the
//! stem and head stay the backbone's. Read from `graphs/search/*.json` or a file.

use std::path::Path;

use anyhow::{bail, ensure, Context as _, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::reward::RewardWeights;
use crate::model::{load_spec, BlockType, MinMax, Model, ModelSpec};

/// Built-in spaces: name and JSON.
const BUILTINS: [(&str, &str); 2] = [
    ("tiny", include_str!("../../graphs/search/tiny.json")),
    ("s", include_str!("../../graphs/search/s.json")),
];

/// The squeeze-excite ratio of MBConv candidates whose backbone stage has none (the official
/// MBConv stages use 0.25); Fused-MBConv candidates have no squeeze-excite, as in the paper.
const MBCONV_SE_RATIO: f64 = 0.25;

/// A search space file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The backbone: a built-in model name or a spec file.
    pub backbone: String,
    /// The choices of each backbone stage, in order.
    pub stages: Vec<StageChoices>,
    pub reward: RewardWeights,
    pub proxy: ProxyRecipe,
    /// Candidates whose training step takes more than this many times the backbone's are
    /// rejected once timed, without a proxy run, and another is drawn in their place: the
    /// reward cannot pay back their proxy time (at four times the backbone's step, `w = -0.07`
    /// asks for 10% more accuracy than the backbone's just to tie it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step_ratio: Option<f64>,
}

/// What one stage may be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageChoices {
    pub block: Vec<BlockType>,
    pub kernel: Vec<usize>,
    pub expand_ratio: Vec<usize>,
    /// Layers of the stage, both ends included.
    pub repeats: MinMax<usize>,
}

/// The short training run that scores a candidate's accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRecipe {
    pub epochs: f64,
    pub batch: usize,
    /// Train and evaluate at this size (one stage): the paper trains candidates at reduced
    /// image size.
    pub image_size: usize,
    /// Evaluate on at most this many images.
    #[serde(default)]
    pub eval_limit: Option<usize>,
    /// Learning rate per 256 examples.
    pub lr_base: f64,
}

/// One candidate's choices, one per stage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Candidate {
    pub stages: Vec<StageChoice>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StageChoice {
    pub block: BlockType,
    pub kernel: usize,
    pub expand_ratio: usize,
    pub repeats: usize,
}

impl SearchSpace {
    /// Parses and validates a space against its backbone; errors name `origin` and the field.
    pub fn from_json(text: &str, origin: &str) -> Result<SearchSpace> {
        let space: SearchSpace = serde_json::from_str(text)
            .with_context(|| format!("{origin}: not a valid search space"))?;
        space.validate().with_context(|| origin.to_owned())?;
        Ok(space)
    }

    /// A built-in space by name, or else the file at `name_or_path`.
    pub fn load(name_or_path: &str) -> Result<SearchSpace> {
        if let Some((name, text)) = BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            return SearchSpace::from_json(text, &format!("built-in search space {name}"));
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown search space `{name_or_path}`: neither a built-in space ({}) nor a file",
                names.join(", ")
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        SearchSpace::from_json(&text, &path.display().to_string())
    }

    fn validate(&self) -> Result<()> {
        let backbone = self.backbone_spec()?;
        ensure!(
            self.stages.len() == backbone.stages.len(),
            "field `stages`: {} entries, the backbone {} has {} stages",
            self.stages.len(),
            backbone.name,
            backbone.stages.len()
        );
        for (i, s) in self.stages.iter().enumerate() {
            let field = |name: &str| format!("field `stages[{i}].{name}`");
            ensure!(!s.block.is_empty(), "{}: no choice", field("block"));
            ensure!(
                !s.kernel.is_empty() && s.kernel.iter().all(|&k| k % 2 == 1 && k <= 31),
                "{}: must list odd sizes up to 31, got {:?}",
                field("kernel"),
                s.kernel
            );
            ensure!(
                !s.expand_ratio.is_empty() && s.expand_ratio.iter().all(|&e| (1..=64).contains(&e)),
                "{}: must list ratios from 1 to 64, got {:?}",
                field("expand_ratio"),
                s.expand_ratio
            );
            ensure!(
                1 <= s.repeats.min && s.repeats.min <= s.repeats.max && s.repeats.max <= 64,
                "{}: must be 1 <= min <= max <= 64, got {}..={}",
                field("repeats"),
                s.repeats.min,
                s.repeats.max
            );
        }
        self.reward.validate()?;
        let p = &self.proxy;
        ensure!(
            p.epochs.is_finite() && p.epochs > 0.0,
            "field `proxy.epochs`: must be positive, got {}",
            p.epochs
        );
        ensure!(p.batch >= 1, "field `proxy.batch`: must be at least 1");
        ensure!(
            (1..=8192).contains(&p.image_size),
            "field `proxy.image_size`: must be 1 to 8192, got {}",
            p.image_size
        );
        ensure!(
            p.lr_base.is_finite() && p.lr_base > 0.0,
            "field `proxy.lr_base`: must be positive, got {}",
            p.lr_base
        );
        if let Some(ratio) = self.max_step_ratio {
            ensure!(
                ratio.is_finite() && ratio >= 1.0,
                "field `max_step_ratio`: must be at least 1 (the backbone's own step), got {ratio}"
            );
        }
        Ok(())
    }

    /// The longest step a candidate may take when the backbone's takes `backbone_seconds`.
    pub fn step_limit(&self, backbone_seconds: f64) -> Option<f64> {
        self.max_step_ratio.map(|ratio| ratio * backbone_seconds)
    }

    pub fn backbone_spec(&self) -> Result<ModelSpec> {
        Ok(load_spec(&self.backbone)?)
    }

    /// A candidate drawn uniformly: every choice of every stage independently.
    pub fn sample(&self, rng: &mut impl Rng) -> Candidate {
        Candidate {
            stages: self
                .stages
                .iter()
                .map(|s| StageChoice {
                    block: *s.block.choose(rng).expect("validated: not empty"),
                    kernel: *s.kernel.choose(rng).expect("validated: not empty"),
                    expand_ratio: *s.expand_ratio.choose(rng).expect("validated: not empty"),
                    repeats: rng.gen_range(s.repeats.min..=s.repeats.max),
                })
                .collect(),
        }
    }

    /// `parent` with one choice of one stage changed to another allowed value (a choice with a
    /// single value is never picked, so the child always differs when anything can).
    pub fn mutate(&self, parent: &Candidate, rng: &mut impl Rng) -> Candidate {
        let mut child = parent.clone();
        let mut mutable = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            for (what, options) in [
                (0, s.block.len()),
                (1, s.kernel.len()),
                (2, s.expand_ratio.len()),
                (3, s.repeats.max - s.repeats.min + 1),
            ] {
                if options > 1 {
                    mutable.push((i, what));
                }
            }
        }
        let Some(&(i, what)) = mutable.choose(rng) else {
            return child;
        };
        let (s, c) = (&self.stages[i], &mut child.stages[i]);
        fn other<T: Copy + PartialEq>(options: &[T], current: T, rng: &mut impl Rng) -> T {
            let others: Vec<T> = options.iter().copied().filter(|&o| o != current).collect();
            *others.choose(rng).unwrap_or(&current)
        }
        match what {
            0 => c.block = other(&s.block, c.block, rng),
            1 => c.kernel = other(&s.kernel, c.kernel, rng),
            2 => c.expand_ratio = other(&s.expand_ratio, c.expand_ratio, rng),
            _ => {
                let range: Vec<usize> = (s.repeats.min..=s.repeats.max).collect();
                c.repeats = other(&range, c.repeats, rng);
            }
        }
        child
    }

    /// The model spec of `candidate`, named `name`: the backbone with each stage's choices.
    pub fn spec(&self, candidate: &Candidate, name: &str) -> Result<ModelSpec> {
        let mut spec = self.backbone_spec()?;
        ensure!(
            candidate.stages.len() == spec.stages.len(),
            "a candidate of {} stages for a backbone of {}",
            candidate.stages.len(),
            spec.stages.len()
        );
        spec.name = name.to_owned();
        spec.description = format!(
            "Candidate of the search space {} (backbone {}).",
            self.name, self.backbone
        );
        for (stage, choice) in spec.stages.iter_mut().zip(&candidate.stages) {
            stage.block = choice.block;
            stage.kernel = choice.kernel;
            stage.expand_ratio = choice.expand_ratio;
            stage.repeats = choice.repeats;
            stage.se_ratio = match choice.block {
                BlockType::Fused => 0.0,
                BlockType::Mbconv if stage.se_ratio > 0.0 => stage.se_ratio,
                BlockType::Mbconv => MBCONV_SE_RATIO,
            };
        }
        spec.validate()
            .map_err(|e| e.at(&format!("candidate {name}")))?;
        Model::new(spec.clone())?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn sampling_covers_every_choice_and_respects_the_ranges() {
        let space = SearchSpace::load("tiny").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Per stage: the blocks, kernels, ratios and repeat counts drawn.
        type Seen = (
            HashSet<BlockType>,
            HashSet<usize>,
            HashSet<usize>,
            HashSet<usize>,
        );
        let mut seen: Vec<Seen> = vec![Default::default(); space.stages.len()];
        for _ in 0..500 {
            let candidate = space.sample(&mut rng);
            for ((choice, allowed), seen) in
                candidate.stages.iter().zip(&space.stages).zip(&mut seen)
            {
                assert!(allowed.block.contains(&choice.block));
                assert!(allowed.kernel.contains(&choice.kernel));
                assert!(allowed.expand_ratio.contains(&choice.expand_ratio));
                assert!((allowed.repeats.min..=allowed.repeats.max).contains(&choice.repeats));
                seen.0.insert(choice.block);
                seen.1.insert(choice.kernel);
                seen.2.insert(choice.expand_ratio);
                seen.3.insert(choice.repeats);
            }
        }
        for (allowed, seen) in space.stages.iter().zip(&seen) {
            assert_eq!(seen.0.len(), allowed.block.len());
            assert_eq!(seen.1.len(), allowed.kernel.len());
            assert_eq!(seen.2.len(), allowed.expand_ratio.len());
            assert_eq!(seen.3.len(), allowed.repeats.max - allowed.repeats.min + 1);
        }
    }

    #[test]
    fn a_mutation_changes_exactly_one_choice() {
        let space = SearchSpace::load("s").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..100 {
            let parent = space.sample(&mut rng);
            let child = space.mutate(&parent, &mut rng);
            let changed: usize = parent
                .stages
                .iter()
                .zip(&child.stages)
                .map(|(a, b)| {
                    usize::from(a.block != b.block)
                        + usize::from(a.kernel != b.kernel)
                        + usize::from(a.expand_ratio != b.expand_ratio)
                        + usize::from(a.repeats != b.repeats)
                })
                .sum();
            assert_eq!(changed, 1, "{parent:?} -> {child:?}");
        }
    }

    #[test]
    fn a_candidate_is_the_backbone_with_its_choices() {
        let space = SearchSpace::load("tiny").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let candidate = space.sample(&mut rng);
        let spec = space.spec(&candidate, "tiny-001").unwrap();
        let backbone = space.backbone_spec().unwrap();
        assert_eq!(spec.name, "tiny-001");
        assert_eq!(
            (spec.stem.clone(), spec.head.clone()),
            (backbone.stem.clone(), backbone.head.clone())
        );
        for ((stage, choice), original) in spec
            .stages
            .iter()
            .zip(&candidate.stages)
            .zip(&backbone.stages)
        {
            assert_eq!(
                (stage.in_filters, stage.out_filters, stage.stride),
                (original.in_filters, original.out_filters, original.stride)
            );
            assert_eq!(
                (stage.block, stage.kernel, stage.expand_ratio, stage.repeats),
                (
                    choice.block,
                    choice.kernel,
                    choice.expand_ratio,
                    choice.repeats
                )
            );
            let se = if choice.block == BlockType::Fused {
                0.0
            } else {
                0.25
            };
            assert_eq!(stage.se_ratio, se);
        }
        // The backbone read back as a candidate builds the backbone's network.
        let itself = space
            .spec(&Candidate::of(&backbone), &backbone.name)
            .unwrap();
        assert_eq!(
            Model::new(itself).unwrap().param_counts(),
            Model::new(backbone).unwrap().param_counts()
        );
    }

    #[test]
    fn bad_spaces_name_the_field() {
        let space = |stages: &str| {
            format!(
                r#"{{"name": "x", "backbone": "tiny", "stages": {stages},
                    "reward": {{"step_time": -0.07, "params": -0.05}},
                    "proxy": {{"epochs": 1.0, "batch": 8, "image_size": 16, "lr_base": 0.1}}}}"#
            )
        };
        let stage = r#"{"block": ["fused"], "kernel": [3], "expand_ratio": [1], "repeats": {"min": 1, "max": 2}}"#;
        let four = format!("[{stage}, {stage}, {stage}, {stage}]");
        SearchSpace::from_json(&space(&four), "x.json").unwrap();
        for (stages, needle) in [
            (
                format!("[{stage}]"),
                "field `stages`: 1 entries, the backbone efficientnetv2-tiny has 4 stages",
            ),
            (
                four.replace("[3]", "[4]"),
                "field `stages[0].kernel`: must list odd sizes",
            ),
            (
                four.replace(r#""min": 1, "max": 2"#, r#""min": 3, "max": 2"#),
                "field `stages[0].repeats`",
            ),
            (
                four.replace(r#"["fused"]"#, "[]"),
                "field `stages[0].block`: no choice",
            ),
        ] {
            let error = format!(
                "{:#}",
                SearchSpace::from_json(&space(&stages), "x.json").unwrap_err()
            );
            assert!(error.contains(needle), "{error}");
            assert!(error.contains("x.json"), "{error}");
        }
        let limited = |ratio: &str| {
            space(&four).replacen('{', &format!("{{\"max_step_ratio\": {ratio}, "), 1)
        };
        assert_eq!(
            SearchSpace::from_json(&limited("4"), "x.json")
                .unwrap()
                .step_limit(0.5),
            Some(2.0)
        );
        for (ratio, needle) in [
            ("0.5", "field `max_step_ratio`: must be at least 1"),
            ("\"fast\"", "not a valid search space"),
        ] {
            let error = format!(
                "{:#}",
                SearchSpace::from_json(&limited(ratio), "x.json").unwrap_err()
            );
            assert!(error.contains(needle), "{error}");
            assert!(error.contains("x.json"), "{error}");
        }
    }
}
