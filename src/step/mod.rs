//! The step graphs: train, eval, predict and replica-agreement graphs with their signatures, and
//! what they are made of (loss, optimizer, EMA, learning-rate schedule, the state layout).
pub mod agreement_graph;
pub mod ema;
pub mod graphs;
pub mod loss;
pub mod lr;
pub mod optimizer;
pub mod signature;
pub mod state;
