//! The host side of training: a [`context::Context`] (plugin, client, executable cache), the run
//! plan, state on the device, checkpoints, evaluation, events and the progressive-learning run
//! loop.
pub mod agreement;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod context;
pub mod data;
pub mod device_state;
pub mod evaluate;
pub mod events;
pub mod executables;
pub mod init;
pub mod placement;
pub mod plan;
pub mod plot;
pub mod predict;
pub mod recipe;
pub mod report;
pub mod run;
pub mod tensorboard;
pub mod timm_file;
pub mod transfer;
pub mod weights;
