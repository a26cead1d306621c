//! Training recipes: the settings of a run that belong to the training procedure rather than to
//! the model, read from `graphs/recipes/*.json` (built into the binary) or a file: the
//! augmentation constants (crop-area floor, RandAugment pixel constants and operation list, the
//! eval crop) and the optimisation settings (epochs, learning rate and its schedule, label
//! smoothing, weight decay, EMA, dropout, stochastic depth, image size, augmentation policy)
//! that a recipe such as fine-tuning sets. A command-line option overrides the recipe's value.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::data::{AugmentOn, AugmentSettings};
use crate::model::ModelSpec;
use crate::step::lr::Decay;

/// Built-in recipes: name and JSON.
const BUILTINS: [(&str, &str); 5] = [
    (
        "official",
        include_str!("../../graphs/recipes/official.json"),
    ),
    ("tiny", include_str!("../../graphs/recipes/tiny.json")),
    (
        "finetune",
        include_str!("../../graphs/recipes/finetune.json"),
    ),
    (
        "transfer",
        include_str!("../../graphs/recipes/transfer.json"),
    ),
    (
        "imagenet21k",
        include_str!("../../graphs/recipes/imagenet21k.json"),
    ),
];

/// A training recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Absent fields take the official values, tuned for 224+ px images.
    #[serde(default)]
    pub augment: AugmentSettings,
    /// The run settings this recipe chooses; absent ones keep the command line's defaults.
    #[serde(default)]
    pub train: TrainSettings,
}

/// How training images are augmented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Augmentation {
    /// The model's own policy (RandAugment with the progressive magnitudes, or AutoAugment v0
    /// for B0-B3) and the stages' mixup and cutmix.
    #[default]
    Model,
    /// The random crop and flip only, no mixing: the official code without `augname`
    /// (ImageNet-21k pre-training).
    CropFlip,
    /// The whole image resized, a random flip and a cutout filled with noise, no mixing: the
    /// official fine-tuning preprocessing (`augname='ft'`).
    FlipCutout,
    /// `"none"`, a debugging mode: no random draw at all. Training sees the evaluation
    /// transform (the whole image resized to the stage size), no flip, policy or mixing, and
    /// the examples in the data set's order every epoch, so a run's batches are the same in
    /// every epoch and in every run, and another framework can be fed the very same inputs.
    #[serde(rename = "none")]
    Off,
}

/// The image size a recipe trains at instead of the progressive schedule's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrainImageSize {
    /// `"eval"`: the model's eval size (the official `isize=1.0` of fine-tuning).
    Named(NamedImageSize),
    /// Train and evaluate at this many pixels (ImageNet-21k's 224).
    Pixels(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedImageSize {
    Eval,
}

/// Run settings a recipe may choose; each is optional, and a command-line option overrides it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    /// Train at least this many steps whatever the epochs give (the official `min_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_steps: Option<u64>,
    /// Train exactly this many steps, whatever the epochs and `min_steps` give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Learning rate per 256 examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_base: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Dropout before the classifier, in place of the spec's (and of any schedule of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// The last block's survival probability, in place of the spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survival_prob: Option<f64>,
    /// Progressive stages; 1 trains at the final values only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<TrainImageSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augmentation: Option<Augmentation>,
    /// Where the augmentation runs (`"host"` or `"device"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment_on: Option<AugmentOn>,
}

impl TrainSettings {
    /// Each setting of `self`, or else `fallback`'s.
    pub fn or(&self, fallback: &TrainSettings) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs.or(fallback.epochs),
            min_steps: self.min_steps.or(fallback.min_steps),
            steps: self.steps.or(fallback.steps),
            batch: self.batch.or(fallback.batch),
            lr_base: self.lr_base.or(fallback.lr_base),
            warmup_epochs: self.warmup_epochs.or(fallback.warmup_epochs),
            decay: self.decay.or(fallback.decay),
            label_smoothing: self.label_smoothing.or(fallback.label_smoothing),
            weight_decay: self.weight_decay.or(fallback.weight_decay),
            ema_decay: self.ema_decay.or(fallback.ema_decay),
            dropout: self.dropout.or(fallback.dropout),
            survival_prob: self.survival_prob.or(fallback.survival_prob),
            stages: self.stages.or(fallback.stages),
            image_size: self.image_size.or(fallback.image_size),
            augmentation: self.augmentation.or(fallback.augmentation),
            augment_on: self.augment_on.or(fallback.augment_on),
        }
    }
}

impl Recipe {
    /// Parses and validates a recipe; errors name `origin` and the field.
    pub fn from_json(text: &str, origin: &str) -> Result<Recipe> {
        let recipe: Recipe = serde_json::from_str(text)
            .with_context(|| format!("{origin}: not a valid training recipe"))?;
        if let Some((field, problem)) = recipe.augment.out_of_range() {
            bail!("{origin}: field `augment.{field}`: {problem}");
        }
        Ok(recipe)
    }

    /// A built-in recipe by name, or else the recipe file at `name_or_path`.
    pub fn load(name_or_path: &str) -> Result<Recipe> {
        if let Some((name, text)) = BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            return Recipe::from_json(text, &format!("built-in recipe {name}"));
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Recipe::from_json(&text, &path.display().to_string());
        }
        let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown recipe `{name_or_path}`: neither a built-in recipe ({}) nor a file",
            names.join(", ")
        )
    }

    /// The recipe `chosen`, or else the one `model` names, or else the official one.
    pub fn for_run(chosen: Option<&str>, model: &ModelSpec) -> Result<Recipe> {
        Recipe::load(chosen.or(model.recipe.as_deref()).unwrap_or("official"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::transform::randaugment::{OpKind, OpSet};
    use crate::model::load_spec;

    #[test]
    fn every_model_but_tiny_trains_with_the_official_settings() {
        for model in ["b0", "b3", "s", "m", "l", "xl"] {
            let recipe = Recipe::for_run(None, &load_spec(model).unwrap()).unwrap();
            assert_eq!(recipe.name, "official");
            assert_eq!(recipe.augment, AugmentSettings::default(), "{model}");
        }
        // 28 px Fashion-MNIST: the pixel constants scaled by 28/224, a centred 26 px eval crop,
        // a 35 % crop-area floor, and no operation that inverts, solarises, posterises or
        // recolours greyscale images.
        use OpKind::*;
        let tiny = Recipe::for_run(None, &load_spec("tiny").unwrap()).unwrap();
        assert_eq!(
            tiny.augment,
            AugmentSettings {
                crop_area_min: Some(0.35),
                translate_const: Some(12.5),
                cutout_const: Some(5.0),
                eval_crop_padding: 2.0,
                randaugment_ops: OpSet::new(&[
                    AutoContrast,
                    Rotate,
                    Contrast,
                    Brightness,
                    Sharpness,
                    ShearX,
                    ShearY,
                    TranslateX,
                    TranslateY,
                    Cutout
                ])
                .unwrap(),
            }
        );
        let chosen = Recipe::for_run(Some("official"), &load_spec("tiny").unwrap()).unwrap();
        assert_eq!(chosen.augment, AugmentSettings::default());
        // A spec made from tiny's under another name (a search candidate, a user's copy) keeps
        // tiny's recipe.
        let mut candidate = load_spec("tiny").unwrap();
        candidate.name = "tiny-001".into();
        let json = serde_json::to_string(&candidate).unwrap();
        let reloaded: ModelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(Recipe::for_run(None, &reloaded).unwrap().name, "tiny");
    }

    #[test]
    fn a_partial_recipe_keeps_the_official_values_it_leaves_out() {
        let recipe = Recipe::from_json(
            r#"{"name": "mine", "augment": {"cutout_const": 8.0}}"#,
            "mine.json",
        )
        .unwrap();
        assert_eq!(
            recipe.augment,
            AugmentSettings {
                cutout_const: Some(8.0),
                ..AugmentSettings::default()
            }
        );
    }

    #[test]
    fn bad_recipes_name_the_file_and_the_field() {
        let err = |augment: &str| {
            let text = format!(r#"{{"name": "bad", "augment": {augment}}}"#);
            format!("{:#}", Recipe::from_json(&text, "bad.json").unwrap_err())
        };
        for (augment, needle) in [
            (
                r#"{"crop_area_min": 0.0}"#,
                "bad.json: field `augment.crop_area_min`: must be in (0, 1], got 0",
            ),
            (
                r#"{"crop_area_min": 1.2}"#,
                "bad.json: field `augment.crop_area_min`: must be in (0, 1], got 1.2",
            ),
            (
                r#"{"translate_const": -3.0}"#,
                "bad.json: field `augment.translate_const`: must be a finite number >= 0, got -3",
            ),
            (
                r#"{"cutout_const": -1.0}"#,
                "bad.json: field `augment.cutout_const`: must be a finite number >= 0, got -1",
            ),
            (r#"{"translate": 10.0}"#, "unknown field `translate`"),
            (r#"{"randaugment_ops": []}"#, "operation list is empty"),
            (
                r#"{"randaugment_ops": ["Rotate", "Twirl"]}"#,
                "unknown variant `Twirl`",
            ),
        ] {
            let message = err(augment);
            assert!(message.contains(needle), "{augment}: {message}");
        }
        let missing = format!("{:#}", Recipe::load("no-such-recipe").unwrap_err());
        assert!(
            missing.contains("unknown recipe `no-such-recipe`"),
            "{missing}"
        );
        assert!(
            missing.contains("official, tiny, finetune, transfer, imagenet21k"),
            "{missing}"
        );
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn the_fine_tuning_recipes_carry_the_official_values() {
        let finetune = Recipe::load("finetune").unwrap().train;
        assert_eq!(
            finetune,
            TrainSettings {
                epochs: Some(15.0),
                min_steps: Some(10_000),
                steps: None,
                batch: Some(512),
                lr_base: Some(0.0005),
                warmup_epochs: Some(1.0),
                decay: Some(Decay::Constant),
                label_smoothing: Some(0.1),
                weight_decay: Some(1e-5),
                ema_decay: Some(0.9996),
                dropout: Some(1e-6),
                survival_prob: Some(0.8),
                stages: Some(1),
                image_size: Some(TrainImageSize::Named(NamedImageSize::Eval)),
                augmentation: Some(Augmentation::FlipCutout),
                augment_on: None,
            }
        );
        // Paper section 5.3 over the code's Cifar10Ft: 10,000 steps, 0.001 at batch 512,
        // cosine, no weight decay.
        let transfer = Recipe::load("transfer").unwrap().train;
        assert_eq!(
            (transfer.steps, transfer.batch, transfer.lr_base),
            (Some(10_000), Some(512), Some(0.0005))
        );
        assert_eq!(
            (transfer.decay, transfer.weight_decay),
            (Some(Decay::Cosine), Some(0.0))
        );
        let pretrain = Recipe::load("imagenet21k").unwrap().train;
        assert_eq!(
            (pretrain.epochs, pretrain.lr_base, pretrain.label_smoothing),
            (Some(60.0), Some(0.008), Some(0.0))
        );
        assert_eq!(
            (pretrain.image_size, pretrain.stages, pretrain.survival_prob),
            (Some(TrainImageSize::Pixels(224)), Some(1), Some(1.0))
        );
        assert_eq!(pretrain.augmentation, Some(Augmentation::CropFlip));
    }

    #[test]
    fn a_recipe_switches_data_randomness_off_with_none() {
        let recipe = Recipe::from_json(
            r#"{"name": "debug", "train": {"augmentation": "none"}}"#,
            "debug.json",
        )
        .unwrap();
        assert_eq!(recipe.train.augmentation, Some(Augmentation::Off));
        assert_eq!(
            serde_json::to_string(&Augmentation::Off).unwrap(),
            r#""none""#
        );
    }

    #[test]
    fn settings_fall_back_field_by_field() {
        let given = TrainSettings {
            epochs: Some(3.0),
            ..TrainSettings::default()
        };
        let recipe = TrainSettings {
            epochs: Some(15.0),
            lr_base: Some(0.0005),
            ..TrainSettings::default()
        };
        let merged = given.or(&recipe);
        assert_eq!((merged.epochs, merged.lr_base), (Some(3.0), Some(0.0005)));
        assert_eq!(merged.batch, None);
    }

    #[test]
    fn a_recipe_with_an_unknown_setting_is_refused_naming_it() {
        let error = Recipe::from_json(
            r#"{"name": "x", "train": {"learning_rate": 0.1}}"#,
            "x.json",
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("unknown field `learning_rate`"),
            "{error:#}"
        );
    }
}
