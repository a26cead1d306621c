//! Static analysis of a resolved model: parameter counts, multiply-accumulates per image, feature-map
//! sizes, and a Keras/torchinfo-style summary table. Image sizes are square; spatial sizes follow TF
//! `SAME` padding, `ceil(H / stride)`.

use std::fmt::Write as _;
use std::ops::{Add, AddAssign};

use super::params::Param;
use super::resolve::{Block, Model};
use super::spec::BlockType;

/// Output size of a TF `SAME` convolution.
pub fn same_output_size(input: usize, stride: usize) -> usize {
    input.div_ceil(stride)
}

/// Parameter counts; `total` includes the BN moving statistics (what Keras `count_params` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamCounts {
    pub total: u64,
    pub trainable: u64,
    /// Non-trainable BN moving mean and variance.
    pub bn_moving: u64,
    /// Dense kernel and bias of the classifier.
    pub classifier: u64,
}

impl ParamCounts {
    pub fn total_without_classifier(&self) -> u64 {
        self.total - self.classifier
    }

    pub fn trainable_without_classifier(&self) -> u64 {
        self.trainable - self.classifier
    }
}

/// Multiply-accumulates per image by layer kind (biases, BN, activations and pooling not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Macs {
    /// Regular convolutions: stem, expansion, fused, projection and head convs.
    pub conv: u64,
    pub depthwise: u64,
    /// The two 1×1 convs of squeeze-excite, applied to the pooled 1×1 map.
    pub se: u64,
    pub dense: u64,
}

impl Macs {
    pub fn total(&self) -> u64 {
        self.conv
            .saturating_add(self.depthwise)
            .saturating_add(self.se)
            .saturating_add(self.dense)
    }
}

impl Add for Macs {
    type Output = Macs;
    /// Saturating, as [`conv_macs`].
    fn add(self, o: Macs) -> Macs {
        Macs {
            conv: self.conv.saturating_add(o.conv),
            depthwise: self.depthwise.saturating_add(o.depthwise),
            se: self.se.saturating_add(o.se),
            dense: self.dense.saturating_add(o.dense),
        }
    }
}

impl AddAssign for Macs {
    fn add_assign(&mut self, o: Macs) {
        *self = *self + o;
    }
}

/// Where a summary row sits in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Stem,
    /// 0-based stage index.
    Stage(usize),
    Head,
}

/// One row of the summary: a stem, a block, the head conv or the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    pub section: Section,
    /// `stem`, `blocks/{index}`, `head/conv` or `head/dense`: the row owns the parameters named
    /// `{name}/…`, except that `head/conv` also owns the head's batch norm `head/bn/…`.
    pub name: String,
    pub label: String,
    /// Output shape per image: `[H, W, C]`, or `[classes]` for the classifier.
    pub output: Vec<usize>,
    /// All parameters of the row, BN moving statistics included.
    pub params: u64,
    pub trainable_params: u64,
    pub macs: Macs,
}

/// MACs of a `k×k` conv producing an `hw×hw×cout` map from `cin` channels.
///
/// Counts saturate at `u64::MAX` (here and when summed): spec validation bounds each width, kernel
/// and image size but not their product, and `summary --image-size` takes any size, so a count
/// beyond 1.8e19 shows as the maximum rather than overflowing.
fn conv_macs(hw: usize, k: usize, cin: usize, cout: usize) -> u64 {
    [hw, hw, k, k, cin, cout]
        .iter()
        .fold(1u64, |n, &d| n.saturating_mul(d as u64))
}

/// MACs of one block given its input spatial size; returns them with the output spatial size.
fn block_macs(b: &Block, hw_in: usize) -> (Macs, usize) {
    let hw = same_output_size(hw_in, b.stride);
    let mut m = Macs::default();
    match b.block {
        BlockType::Mbconv => {
            if b.has_expansion() {
                m.conv = conv_macs(hw_in, 1, b.in_filters, b.mid_filters);
            }
            m.depthwise = conv_macs(hw, b.kernel, 1, b.mid_filters);
            if let Some(rd) = b.se_filters {
                m.se = 2 * (b.mid_filters * rd) as u64;
            }
            m.conv = m
                .conv
                .saturating_add(conv_macs(hw, 1, b.mid_filters, b.out_filters));
        }
        BlockType::Fused if b.has_expansion() => {
            m.conv = conv_macs(hw, b.kernel, b.in_filters, b.mid_filters)
                .saturating_add(conv_macs(hw, 1, b.mid_filters, b.out_filters));
        }
        BlockType::Fused => m.conv = conv_macs(hw, b.kernel, b.in_filters, b.out_filters),
    }
    (m, hw)
}

impl Model {
    pub fn param_counts(&self) -> ParamCounts {
        let mut c = ParamCounts::default();
        for p in self.params() {
            let n = p.numel();
            c.total += n;
            if p.trainable() {
                c.trainable += n;
            } else {
                c.bn_moving += n;
            }
            if Model::is_classifier(&p.name) {
                c.classifier += n;
            }
        }
        c
    }

    /// One row per stem, block, head conv and classifier, at a square `image_size`.
    pub fn layers(&self, image_size: usize) -> Vec<LayerStats> {
        let params = self.params();
        // A row owns the parameters under `{name}/`, or for the head conv those of `head/conv` and `head/bn`.
        let count = |name: &str| {
            let owned = |p: &&Param| match name {
                "head/conv" => p.name.starts_with("head/conv/") || p.name.starts_with("head/bn/"),
                _ => p
                    .name
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('/')),
            };
            let of = params.iter().filter(owned);
            let all = of.clone().map(|p| p.numel()).sum::<u64>();
            let trainable = of.filter(|p| p.trainable()).map(|p| p.numel()).sum::<u64>();
            (all, trainable)
        };
        let mut rows = Vec::with_capacity(self.blocks.len() + 3);
        let mut row = |section, name: String, label: String, output: Vec<usize>, macs| {
            let (params, trainable_params) = count(&name);
            rows.push(LayerStats {
                section,
                name,
                label,
                output,
                params,
                trainable_params,
                macs,
            });
        };

        let spec = &self.spec;
        let (k, s) = (spec.stem.kernel, spec.stem.stride);
        let mut hw = same_output_size(image_size, s);
        let macs = Macs {
            conv: conv_macs(hw, k, spec.input.channels, self.stem_filters),
            ..Macs::default()
        };
        row(
            Section::Stem,
            "stem".into(),
            format!("conv k{k} s{s}"),
            vec![hw, hw, self.stem_filters],
            macs,
        );
        let mut channels = self.stem_filters;
        for b in &self.blocks {
            let (macs, out) = block_macs(b, hw);
            hw = out;
            channels = b.out_filters;
            row(
                Section::Stage(b.stage),
                format!("blocks/{}", b.index),
                b.label(),
                vec![hw, hw, channels],
                macs,
            );
        }
        let macs = Macs {
            conv: conv_macs(hw, 1, channels, self.head_filters),
            ..Macs::default()
        };
        row(
            Section::Head,
            "head/conv".into(),
            "conv k1 s1".into(),
            vec![hw, hw, self.head_filters],
            macs,
        );
        let classes = spec.num_classes;
        let macs = Macs {
            dense: (self.head_filters * classes) as u64,
            ..Macs::default()
        };
        row(
            Section::Head,
            "head/dense".into(),
            "pool+dense".into(),
            vec![classes],
            macs,
        );
        rows
    }

    /// MACs per image at a square `image_size`.
    pub fn macs(&self, image_size: usize) -> Macs {
        self.layers(image_size)
            .iter()
            .fold(Macs::default(), |acc, l| acc + l.macs)
    }

    /// Output spatial size of the stem followed by that of every stage.
    pub fn stage_spatial_sizes(&self, image_size: usize) -> Vec<usize> {
        let mut hw = same_output_size(image_size, self.spec.stem.stride);
        let mut sizes = vec![hw];
        for stage in &self.stages {
            for b in &self.blocks[stage.blocks.clone()] {
                hw = same_output_size(hw, b.stride);
            }
            sizes.push(hw);
        }
        sizes
    }

    /// The layer table at a square `image_size`, like a Keras or torchinfo summary.
    pub fn summary(&self, image_size: usize) -> String {
        let rows = self.layers(image_size);
        let header = ["stage", "layer", "type", "output", "params", "MACs"];
        let cells: Vec<[String; 6]> = rows
            .iter()
            .map(|r| {
                let section = match r.section {
                    Section::Stem => "stem".to_string(),
                    Section::Stage(s) => s.to_string(),
                    Section::Head => "head".to_string(),
                };
                let output = r
                    .output
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x");
                [
                    section,
                    r.name.clone(),
                    r.label.clone(),
                    output,
                    thousands(r.params),
                    thousands(r.macs.total()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        let line = |out: &mut String, row: [&str; 6]| {
            let [a, b, c, d, e, f] = row;
            let [wa, wb, wc, wd, we, wf] = widths;
            // Writing into a String cannot fail.
            let _ = writeln!(
                out,
                "{a:<wa$}  {b:<wb$}  {c:<wc$}  {d:<wd$}  {e:>we$}  {f:>wf$}"
            );
        };
        let spec = &self.spec;
        let mut out = format!(
            "{} at {image_size}x{image_size}x{}, {} classes, {} blocks\n",
            spec.name,
            spec.input.channels,
            spec.num_classes,
            self.blocks.len()
        );
        line(&mut out, header);
        let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1));
        out.push_str(&rule);
        out.push('\n');
        for row in &cells {
            line(
                &mut out,
                [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]],
            );
        }
        out.push_str(&rule);
        out.push('\n');
        let c = self.param_counts();
        let m = rows.iter().fold(Macs::default(), |acc, l| acc + l.macs);
        let _ = writeln!(
            out,
            "params: {} (trainable {}, BN moving statistics {})",
            thousands(c.total),
            thousands(c.trainable),
            thousands(c.bn_moving)
        );
        let _ = writeln!(
            out,
            "MACs per image: {} (conv {}, depthwise {}, squeeze-excite {}, dense {})",
            thousands(m.total()),
            thousands(m.conv),
            thousands(m.depthwise),
            thousands(m.se),
            thousands(m.dense)
        );
        out
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(21_612_360), "21,612,360");
    }

    #[test]
    fn same_output_size_is_ceil() {
        assert_eq!(same_output_size(75, 2), 38);
        assert_eq!(same_output_size(384, 2), 192);
        assert_eq!(same_output_size(19, 1), 19);
    }
}
