//! Running step graphs through a plugin: a [`context::Context`] (plugin, client, devices,
//! executable cache), where the replicas live, which graphs to compile and the training state
//! kept on the devices. What the trainer, `aot`, `bench` and the search share.
pub mod context;
pub mod device_state;
pub mod executables;
pub mod graph_plan;
pub mod placement;
