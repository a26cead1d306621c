//! Neural-network layers as HLO: convolutions with TF `SAME` padding, batch norm, activations,
//! squeeze-and-excite, pooling, dense, the random regularisers (dropout, stochastic depth), and
//! device-side image augmentation ([`augment`]).
//!
//! Everything is NHWC with HWIO kernels. Layers are plain functions over [`Builder`] values, so
//! autodiff sees ordinary HLO and the model code stays a readable sequence of calls.

pub mod augment;
mod bn_silu_se;
mod layers;
mod norm;
mod random;
mod replicas;

pub use bn_silu_se::batch_norm_silu_se_train;
pub use layers::{
    conv2d, dense, depthwise_conv2d, global_avg_pool, silu, squeeze_excite, DepthwiseImpl,
    SeWeights,
};
pub use norm::{
    batch_norm_infer, batch_norm_train, BatchNormParams, BatchNormTrain, BatchNormUpdate,
};
pub use random::{drop_connect, dropout, Rng};
pub use replicas::Replicas;
