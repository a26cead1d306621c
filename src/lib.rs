//! effnetv2: build XLA HLO for EfficientNetV2 training in Rust and run it through PJRT plugins.
pub mod aot;
pub mod autodiff;
pub mod data;
pub mod hlo;
pub mod model;
pub mod nn;
pub mod program;
pub mod report;
pub mod runtime;
pub mod search;
pub mod step;
pub mod storage;
pub mod trainer;
pub mod weights;
