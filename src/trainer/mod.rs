//! The training run: its configuration and recipe, its plan, its input pipeline, the initial or
//! pretrained state, the progressive-learning run loop with evaluation, checkpoints and events,
//! and timing a train step (`bench`, the search's step timer).
pub mod agreement_check;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod events;
pub mod infeed;
pub mod init;
pub mod input;
pub mod plan;
pub mod pretrained;
pub mod recipe;
pub mod run;
mod run_dir;
pub mod tensorboard;
pub mod timm_file;
