//! The EfficientNetV2 forward pass as HLO, for any resolved model, batch and image size (NHWC).
//!
//! Op order follows the official `effnetv2_model.py`: MBConv = [1x1 expand, BN, SiLU] ->
//! depthwise, BN, SiLU -> [squeeze-excite] -> 1x1 project, BN -> [stochastic depth + residual];
//! Fused-MBConv = kxk conv, BN, SiLU -> [1x1 project, BN] (a single conv when the expand ratio is
//! 1); head = 1x1 conv, BN, SiLU -> global average pool -> dropout -> dense.

use std::collections::BTreeMap;

use super::resolve::{Block, Model};
use super::spec::BlockType;
use crate::hlo::{error::Result, Builder, ElementType, HloError, Value};
use crate::nn::{self, BatchNormParams, DepthwiseImpl, Replicas, Rng, SeWeights};

/// The model's variables as graph values, by parameter name (see [`super::params`]).
#[derive(Clone, Debug, Default)]
pub struct Weights(pub BTreeMap<String, Value>);

impl Weights {
    pub fn get(&self, name: &str) -> Result<Value> {
        self.0.get(name).copied().ok_or_else(|| {
            HloError::new(
                "forward",
                &[],
                format!("the weights have no variable named '{name}'"),
            )
        })
    }

    fn batch_norm(&self, prefix: &str) -> Result<BatchNormParams> {
        Ok(BatchNormParams {
            gamma: self.get(&format!("{prefix}/bn/gamma"))?,
            beta: self.get(&format!("{prefix}/bn/beta"))?,
            moving_mean: self.get(&format!("{prefix}/bn/moving_mean"))?,
            moving_var: self.get(&format!("{prefix}/bn/moving_var"))?,
        })
    }
}

/// Training mode draws stochastic depth and dropout masks from `rng` and uses batch statistics;
/// evaluation mode is deterministic and uses the moving statistics.
pub enum Mode<'a> {
    Train {
        rng: &'a mut Rng,
        dropout_rate: Value,
        /// The replicas whose batches the batch statistics cover (one: this replica's only).
        batch_norm_replicas: Replicas,
    },
    Eval,
}

/// What one forward pass produces.
pub struct ForwardOutput {
    /// f32 `[batch, num_classes]`.
    pub logits: Value,
    /// Updated BN moving statistics (training mode only), by variable name.
    pub bn_updates: Vec<(String, Value)>,
}

/// How the forward pass is lowered to HLO: arithmetic precision and the compilers the graph is
/// shaped for (both change the graph, not the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Lowering {
    /// f32, or bf16 with f32 variables and f32 batch-norm statistics.
    pub compute: ElementType,
    pub backend: Backend,
}

/// The compilers a graph is shaped for. XLA's CPU backend and the accelerator compilers (TPU,
/// GPU) fuse differently, so two layers have a form for each; the function and its derivative
/// are the same:
/// - depthwise convolutions: shifted sums on the CPU (which runs grouped convolutions through a
///   slow generic loop), grouped convolutions on accelerators;
/// - batch norm, SiLU and squeeze-and-excite after an MBConv block's depthwise convolution:
///   autodiff's gradient on the CPU, the joint rule of [`nn::batch_norm_silu_se_train`] on
///   accelerators, whose compilers fuse its per-channel sums into the convolution that produces
///   their input (on the CPU the extra sums cost more than the pass they save).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Cpu,
    Accelerator,
}

impl Backend {
    fn depthwise(self) -> DepthwiseImpl {
        match self {
            Backend::Cpu => DepthwiseImpl::ShiftedSum,
            Backend::Accelerator => DepthwiseImpl::GroupedConvolution,
        }
    }
}

struct Forward<'m, 'w, 'r> {
    model: &'m Model,
    weights: &'w Weights,
    compute: ElementType,
    backend: Backend,
    mode: Mode<'r>,
    bn_updates: Vec<(String, Value)>,
}

/// Builds the forward pass of `model` on `images` (f32 NHWC, already normalised).
pub fn forward(
    b: &mut Builder,
    model: &Model,
    weights: &Weights,
    images: Value,
    lowering: Lowering,
    mode: Mode,
) -> Result<ForwardOutput> {
    let compute = lowering.compute;
    let mut f = Forward {
        model,
        weights,
        compute,
        backend: lowering.backend,
        mode,
        bn_updates: Vec::new(),
    };
    let x = b.convert(images, compute)?;
    let x = b.scoped("stem", |b| {
        f.conv_bn_act(b, "stem", x, model.spec.stem.stride as i64, true)
    })?;
    let x = model.blocks.iter().try_fold(x, |x, block| {
        b.scoped(format!("blocks/{}", block.index), |b| f.block(b, block, x))
    })?;
    let logits = b.scoped("head", |b| f.head(b, x))?;
    Ok(ForwardOutput {
        logits,
        bn_updates: f.bn_updates,
    })
}

/// Runs `f` with the builder's metadata `op_type` set to `op_type`.
fn typed<T>(b: &mut Builder, op_type: &str, f: impl FnOnce(&mut Builder) -> T) -> T {
    let previous = b.set_op_type(Some(op_type.to_string()));
    let out = f(b);
    b.set_op_type(previous);
    out
}

impl Forward<'_, '_, '_> {
    /// A variable converted to the compute type.
    fn var(&self, b: &mut Builder, name: &str) -> Result<Value> {
        let v = self.weights.get(name)?;
        b.convert(v, self.compute)
    }

    /// The replicas batch-norm statistics cover in training mode; `None` in eval mode.
    fn training_replicas(&self) -> Option<Replicas> {
        match self.mode {
            Mode::Train {
                batch_norm_replicas,
                ..
            } => Some(batch_norm_replicas),
            Mode::Eval => None,
        }
    }

    /// Keeps the updated moving statistics of the batch norm `{prefix}/bn` as outputs.
    fn record_update(&mut self, prefix: &str, update: nn::BatchNormUpdate) {
        self.bn_updates
            .push((format!("{prefix}/bn/moving_mean"), update.moving_mean));
        self.bn_updates
            .push((format!("{prefix}/bn/moving_var"), update.moving_var));
    }

    fn batch_norm(&mut self, b: &mut Builder, prefix: &str, x: Value) -> Result<Value> {
        let p = self.weights.batch_norm(prefix)?;
        let bn = self.model.spec.batch_norm;
        typed(b, "batch_norm", |b| match self.training_replicas() {
            Some(replicas) => {
                let norm = nn::batch_norm_train(b, x, &p, bn.momentum, bn.epsilon, replicas)?;
                self.record_update(prefix, norm.update);
                Ok(norm.y)
            }
            None => nn::batch_norm_infer(b, x, &p, bn.epsilon),
        })
    }

    /// `{prefix}/conv/kernel` convolution (dense or depthwise by kernel shape), BN, optional SiLU.
    fn conv_bn_act(
        &mut self,
        b: &mut Builder,
        prefix: &str,
        x: Value,
        stride: i64,
        act: bool,
    ) -> Result<Value> {
        let y = self.conv(b, prefix, x, stride)?;
        let y = self.batch_norm(b, prefix, y)?;
        if act {
            typed(b, "silu", |b| nn::silu(b, y))
        } else {
            Ok(y)
        }
    }

    /// The `{prefix}/conv/kernel` convolution (dense or depthwise by kernel shape).
    fn conv(&mut self, b: &mut Builder, prefix: &str, x: Value, stride: i64) -> Result<Value> {
        let kernel = self.var(b, &format!("{prefix}/conv/kernel"))?;
        let depthwise = prefix.ends_with("/depthwise");
        typed(
            b,
            if depthwise {
                "depthwise_conv2d"
            } else {
                "conv2d"
            },
            |b| {
                if depthwise {
                    nn::depthwise_conv2d(b, x, kernel, stride, self.backend.depthwise())
                } else {
                    nn::conv2d(b, x, kernel, stride)
                }
            },
        )
    }

    /// An MBConv block's depthwise stage with squeeze-and-excite: depthwise convolution, BN,
    /// SiLU, SE; when training for accelerators the last three with their joint gradient rule
    /// ([`nn::batch_norm_silu_se_train`]).
    fn depthwise_se(
        &mut self,
        b: &mut Builder,
        block: &str,
        x: Value,
        stride: i64,
    ) -> Result<Value> {
        let depthwise = format!("{block}/depthwise");
        let se = self.se_weights(b, &format!("{block}/se"))?;
        let joint = self
            .training_replicas()
            .filter(|_| self.backend == Backend::Accelerator);
        let Some(replicas) = joint else {
            let x = b.scoped("depthwise", |b| {
                self.conv_bn_act(b, &depthwise, x, stride, true)
            })?;
            return b.scoped("se", |b| {
                typed(b, "squeeze_excite", |b| nn::squeeze_excite(b, x, &se))
            });
        };
        let p = self.weights.batch_norm(&depthwise)?;
        let bn = self.model.spec.batch_norm;
        let (out, norm) = b.scoped("depthwise", |b| {
            let y = self.conv(b, &depthwise, x, stride)?;
            typed(b, "batch_norm_silu_se", |b| {
                nn::batch_norm_silu_se_train(b, y, &p, bn.momentum, bn.epsilon, replicas, &se)
            })
        })?;
        self.record_update(&depthwise, norm.update);
        Ok(out)
    }

    fn block(&mut self, b: &mut Builder, block: &Block, input: Value) -> Result<Value> {
        let p = format!("blocks/{}", block.index);
        let stride = block.stride as i64;
        let x = match block.block {
            BlockType::Mbconv => {
                let x = if block.has_expansion() {
                    b.scoped("expand", |b| {
                        self.conv_bn_act(b, &format!("{p}/expand"), input, 1, true)
                    })?
                } else {
                    input
                };
                let x = match block.se_filters {
                    Some(_) => self.depthwise_se(b, &p, x, stride)?,
                    None => b.scoped("depthwise", |b| {
                        self.conv_bn_act(b, &format!("{p}/depthwise"), x, stride, true)
                    })?,
                };
                b.scoped("project", |b| {
                    self.conv_bn_act(b, &format!("{p}/project"), x, 1, false)
                })?
            }
            BlockType::Fused if block.has_expansion() => {
                let x = b.scoped("fused", |b| {
                    self.conv_bn_act(b, &format!("{p}/fused"), input, stride, true)
                })?;
                b.scoped("project", |b| {
                    self.conv_bn_act(b, &format!("{p}/project"), x, 1, false)
                })?
            }
            BlockType::Fused => b.scoped("fused", |b| {
                self.conv_bn_act(b, &format!("{p}/fused"), input, stride, true)
            })?,
        };
        if !block.has_residual {
            return Ok(x);
        }
        let x = match &mut self.mode {
            Mode::Train { rng, .. } if block.survival_prob < 1.0 => {
                typed(b, "drop_connect", |b| {
                    nn::drop_connect(b, rng, x, block.survival_prob)
                })?
            }
            _ => x,
        };
        typed(b, "residual", |b| b.add(x, input))
    }

    /// The `{prefix}/{reduce,expand}` weights of a squeeze-and-excite unit, in the compute type.
    fn se_weights(&self, b: &mut Builder, prefix: &str) -> Result<SeWeights> {
        let matrix = |b: &mut Builder, name: &str| -> Result<Value> {
            let k = self.var(b, &format!("{prefix}/{name}/kernel"))?;
            let d = b.array_shape("squeeze_excite", k)?.dims().to_vec();
            b.reshape(k, &[d[2], d[3]])
        };
        Ok(SeWeights {
            reduce_w: matrix(b, "reduce")?,
            reduce_b: self.var(b, &format!("{prefix}/reduce/bias"))?,
            expand_w: matrix(b, "expand")?,
            expand_b: self.var(b, &format!("{prefix}/expand/bias"))?,
        })
    }

    fn head(&mut self, b: &mut Builder, x: Value) -> Result<Value> {
        let x = self.conv_bn_act(b, "head", x, 1, true)?;
        let pooled = typed(b, "global_avg_pool", |b| nn::global_avg_pool(b, x))?;
        let pooled = match &mut self.mode {
            // The rate is a runtime scalar (it may be scheduled per stage); 0 keeps everything.
            Mode::Train {
                rng, dropout_rate, ..
            } => {
                let rate = *dropout_rate;
                typed(b, "dropout", |b| nn::dropout(b, rng, pooled, rate))?
            }
            _ => pooled,
        };
        let w = self.var(b, "head/dense/kernel")?;
        let bias = self.var(b, "head/dense/bias")?;
        let logits = b.scoped("dense", |b| {
            typed(b, "dense", |b| nn::dense(b, pooled, w, bias))
        })?;
        b.convert(logits, ElementType::F32)
    }
}
