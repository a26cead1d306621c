//! Training: step graphs, optimizer, schedules and the progressive-learning scheduler.
pub mod agreement;
pub mod ema;
pub mod loss;
pub mod lr;
pub mod optimizer;
pub mod signature;
pub mod state;
pub mod step;
