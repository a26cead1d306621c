//! Training recipes: the settings of a run that belong to the training procedure rather than to
//! the model, read from `graphs/recipes/*.json` (built into the binary) or a file. Today a recipe
//! carries the augmentation settings: crop-area floor, RandAugment pixel constants and
//! operation list, and the eval crop.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::data::AugmentSettings;
use crate::model::ModelSpec;

/// Built-in recipes: name and JSON.
const BUILTINS: [(&str, &str); 2] = [
    (
        "official",
        include_str!("../../graphs/recipes/official.json"),
    ),
    ("tiny", include_str!("../../graphs/recipes/tiny.json")),
];

/// The prefix of the built-in model names that recipes made for one model leave out.
const MODEL_PREFIX: &str = "efficientnetv2-";

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

    /// The recipe `chosen`, or else the built-in one made for `model` (named like the model
    /// without `efficientnetv2-`), or else the official one.
    pub fn for_run(chosen: Option<&str>, model: &ModelSpec) -> Result<Recipe> {
        if let Some(name) = chosen {
            return Recipe::load(name);
        }
        let short = model.name.strip_prefix(MODEL_PREFIX).unwrap_or(&model.name);
        let name = BUILTINS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| *n == short)
            .unwrap_or("official");
        Recipe::load(name)
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
        assert!(missing.contains("official, tiny"), "{missing}");
    }
}
