//! The host side of training: executables (compiled or loaded from the on-disk cache), state
//! on the device, checkpoints and the progressive-learning scheduler.
pub mod checkpoint;
pub mod data;
pub mod device_state;
pub mod executables;
pub mod init;
pub mod plan;
pub mod plot;
pub mod report;
pub mod run;
