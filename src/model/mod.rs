//! The EfficientNetV2 model family as data: JSON specs (`graphs/`), their resolution into blocks with
//! the official scaling rules, every parameter with its name, shape and initialiser, static analysis
//! (parameter counts, MACs, summary) and the progressive-learning schedule.
//!
//! Flow: [`load_spec`] → [`ModelSpec`] (validated) → [`Model::new`] → [`Model::params`],
//! [`Model::layers`], [`Model::summary`]; [`ModelSpec::progressive_stages`] for the training stages.
pub mod builtin;
pub mod error;
pub mod graph;
pub mod params;
pub mod progressive;
pub mod resolve;
pub mod spec;
pub mod stats;
pub mod timm;

pub use builtin::{builtin_names, load_spec};
pub use error::{FieldError, SpecError};
pub use graph::Backend;
pub use params::{Init, Param, ParamKind};
pub use progressive::ProgressiveStage;
pub use resolve::{round_filters, round_repeats, Block, Model, Stage};
pub use spec::{
    AugmentPolicy, BatchNormSpec, BlockType, HeadSpec, ImageSizes, InputSpec, MinMax, ModelSpec,
    ProgressiveSpec, ScheduleVariant, StageRanges, StageSpec, StemSpec,
};
pub use stats::{same_output_size, LayerStats, Macs, ParamCounts, Section};
