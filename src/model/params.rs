//! Every parameter of a resolved model with a stable hierarchical name, its shape, what it is (and so
//! whether it is trained and weight-decayed) and how the official code initialises it.
//!
//! Layouts are the ones the XLA convolution uses with NHWC activations (`ConvDimensionNumbers::nhwc`):
//! conv kernels `[kh, kw, in, out]` (HWIO); depthwise kernels `[kh, kw, 1, C]`, i.e. HWIO with
//! `feature_group_count = C` (TF stores `[kh, kw, C, 1]`; with a channel multiplier of 1 both have the
//! same element order, so TF checkpoints reshape without a transpose); dense kernels `[in, out]`.
//!
//! Names (`{b}` is the block's global index):
//! - `stem/conv/kernel`, `stem/bn/{gamma,beta,moving_mean,moving_var}`
//! - MBConv: `blocks/{b}/expand/{conv/kernel,bn/*}` (only if expand_ratio ≠ 1),
//!   `blocks/{b}/depthwise/{conv/kernel,bn/*}`, `blocks/{b}/se/{reduce,expand}/{kernel,bias}`,
//!   `blocks/{b}/project/{conv/kernel,bn/*}`
//! - Fused-MBConv: `blocks/{b}/fused/{conv/kernel,bn/*}` (the k×k conv), then
//!   `blocks/{b}/project/{conv/kernel,bn/*}` (only if expand_ratio ≠ 1)
//! - `head/conv/kernel`, `head/bn/*`, `head/dense/{kernel,bias}`

use super::resolve::{Block, Model};
use super::spec::BlockType;

/// What a parameter is; decides trainability and weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    ConvKernel,
    DepthwiseKernel,
    DenseKernel,
    Bias,
    BnGamma,
    BnBeta,
    BnMovingMean,
    BnMovingVar,
}

impl ParamKind {
    /// BN moving statistics are updated by the forward pass, not by the optimiser.
    pub fn trainable(self) -> bool {
        !matches!(self, ParamKind::BnMovingMean | ParamKind::BnMovingVar)
    }

    /// The official L2 term covers trainable variables not matching `.*(bias|gamma|beta).*`: the kernels.
    pub fn weight_decayed(self) -> bool {
        matches!(
            self,
            ParamKind::ConvKernel | ParamKind::DepthwiseKernel | ParamKind::DenseKernel
        )
    }

    /// Axis permutation that turns our layout into PyTorch's (`torch = ours.permute(axes)`):
    /// HWIO → OIHW for conv and depthwise kernels, `[in, out]` → `[out, in]` for dense kernels.
    pub fn torch_axes(self) -> &'static [usize] {
        match self {
            ParamKind::ConvKernel | ParamKind::DepthwiseKernel => &[3, 2, 0, 1],
            ParamKind::DenseKernel => &[1, 0],
            _ => &[0],
        }
    }
}

/// Initial value distribution (spec section 1.4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `normal(0, stddev)`; conv kernels use `stddev = sqrt(2 / fan_out)`, `fan_out = kh * kw * out`
    /// (out = 1 for depthwise kernels, as TF sees their `[kh, kw, C, 1]` shape).
    Normal {
        stddev: f64,
    },
    /// `uniform(-limit, limit)`; the dense kernel uses `limit = 1 / sqrt(num_classes)`.
    Uniform {
        limit: f64,
    },
    Zeros,
    Ones,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    pub init: Init,
}

impl Param {
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    pub fn trainable(&self) -> bool {
        self.kind.trainable()
    }

    pub fn weight_decayed(&self) -> bool {
        self.kind.weight_decayed()
    }
}

/// Collects parameters under a common name prefix.
struct Params {
    list: Vec<Param>,
}

impl Params {
    fn push(&mut self, name: String, shape: Vec<usize>, kind: ParamKind, init: Init) {
        self.list.push(Param {
            name,
            shape,
            kind,
            init,
        });
    }

    fn conv(&mut self, prefix: &str, k: usize, cin: usize, cout: usize) {
        let stddev = (2.0 / (k * k * cout) as f64).sqrt();
        self.push(
            format!("{prefix}/kernel"),
            vec![k, k, cin, cout],
            ParamKind::ConvKernel,
            Init::Normal { stddev },
        );
    }

    fn depthwise(&mut self, prefix: &str, k: usize, channels: usize) {
        let stddev = (2.0 / (k * k) as f64).sqrt();
        let kind = ParamKind::DepthwiseKernel;
        self.push(
            format!("{prefix}/kernel"),
            vec![k, k, 1, channels],
            kind,
            Init::Normal { stddev },
        );
    }

    fn bias(&mut self, prefix: &str, channels: usize) {
        self.push(
            format!("{prefix}/bias"),
            vec![channels],
            ParamKind::Bias,
            Init::Zeros,
        );
    }

    fn batch_norm(&mut self, prefix: &str, channels: usize) {
        let entries = [
            ("gamma", ParamKind::BnGamma, Init::Ones),
            ("beta", ParamKind::BnBeta, Init::Zeros),
            ("moving_mean", ParamKind::BnMovingMean, Init::Zeros),
            ("moving_var", ParamKind::BnMovingVar, Init::Ones),
        ];
        for (name, kind, init) in entries {
            self.push(format!("{prefix}/bn/{name}"), vec![channels], kind, init);
        }
    }

    /// Conv (no bias) followed by batch norm: `{prefix}/conv/kernel`, `{prefix}/bn/*`.
    fn conv_bn(&mut self, prefix: &str, k: usize, cin: usize, cout: usize) {
        self.conv(&format!("{prefix}/conv"), k, cin, cout);
        self.batch_norm(prefix, cout);
    }

    fn block(&mut self, b: &Block) {
        let p = format!("blocks/{}", b.index);
        match b.block {
            BlockType::Mbconv => {
                if b.has_expansion() {
                    self.conv_bn(&format!("{p}/expand"), 1, b.in_filters, b.mid_filters);
                }
                self.depthwise(&format!("{p}/depthwise/conv"), b.kernel, b.mid_filters);
                self.batch_norm(&format!("{p}/depthwise"), b.mid_filters);
                if let Some(rd) = b.se_filters {
                    self.conv(&format!("{p}/se/reduce"), 1, b.mid_filters, rd);
                    self.bias(&format!("{p}/se/reduce"), rd);
                    self.conv(&format!("{p}/se/expand"), 1, rd, b.mid_filters);
                    self.bias(&format!("{p}/se/expand"), b.mid_filters);
                }
                self.conv_bn(&format!("{p}/project"), 1, b.mid_filters, b.out_filters);
            }
            BlockType::Fused if b.has_expansion() => {
                self.conv_bn(&format!("{p}/fused"), b.kernel, b.in_filters, b.mid_filters);
                self.conv_bn(&format!("{p}/project"), 1, b.mid_filters, b.out_filters);
            }
            BlockType::Fused => {
                self.conv_bn(&format!("{p}/fused"), b.kernel, b.in_filters, b.out_filters)
            }
        }
    }
}

/// The prefix of the classifier's parameter names: the layer whose shape follows the class count.
const CLASSIFIER: &str = "head/dense/";

impl Model {
    /// Whether `name` is a parameter of the classifier (the final dense layer), the only layer
    /// a pretrained model's weights may lack for another class count.
    pub fn is_classifier(name: &str) -> bool {
        name.starts_with(CLASSIFIER)
    }

    /// All parameters in forward order: stem, blocks, head, classifier.
    pub fn params(&self) -> Vec<Param> {
        let spec = &self.spec;
        let mut ps = Params { list: Vec::new() };
        ps.conv_bn(
            "stem",
            spec.stem.kernel,
            spec.input.channels,
            self.stem_filters,
        );
        for b in &self.blocks {
            ps.block(b);
        }
        let last = self
            .blocks
            .last()
            .map_or(self.stem_filters, |b| b.out_filters);
        ps.conv_bn("head", 1, last, self.head_filters);
        let limit = 1.0 / (spec.num_classes as f64).sqrt();
        let dense = vec![self.head_filters, spec.num_classes];
        ps.push(
            format!("{CLASSIFIER}kernel"),
            dense,
            ParamKind::DenseKernel,
            Init::Uniform { limit },
        );
        ps.bias(CLASSIFIER.trim_end_matches('/'), spec.num_classes);
        ps.list
    }
}
