//! The initial training state on the host: variables drawn as the official code initialises
//! them, RMSProp slots (mean-square ones, momentum zeros), EMA shadows equal to the variables,
//! step 0 and the RNG key derived from the seed.

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::hlo::Literal;
use crate::model::{Init, Model, Param};
use crate::step::optimizer::{INITIAL_MEAN_SQUARE, INITIAL_MOMENTUM};
use crate::step::state::{Role, StateLayout};

/// Draws one variable; each variable has its own stream keyed by (seed, position) so adding a
/// layer does not change the others' initial values.
fn draw(param: &Param, seed: u64, position: u64) -> Vec<f32> {
    let n: usize = param.shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match param.init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Normal { stddev } => {
            let d = Normal::new(0.0, stddev).expect("a positive standard deviation");
            (0..n).map(|_| d.sample(&mut rng) as f32).collect()
        }
        Init::Uniform { limit } => {
            let d = Uniform::new(-limit, limit);
            (0..n).map(|_| d.sample(&mut rng) as f32).collect()
        }
    }
}

/// The initial state of a run, in layout order.
pub fn initial_state(layout: &StateLayout, seed: u64) -> Vec<Literal> {
    let mut variables = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(layout.len());
    for (position, e) in layout.entries().iter().enumerate() {
        let dims = e.shape.dims();
        let literal = match &e.role {
            Role::Variable(p) => {
                let values = draw(p, seed, position as u64);
                let lit = Literal::from_vec(dims, &values)
                    .expect("the layout shape matches the parameter");
                variables.insert(p.name.clone(), lit.clone());
                lit
            }
            Role::MeanSquare(_) => Literal::filled(dims, INITIAL_MEAN_SQUARE as f32),
            Role::Momentum(_) => Literal::filled(dims, INITIAL_MOMENTUM as f32),
            Role::Ema(name) => variables[name].clone(),
            Role::Step => Literal::scalar(0i64),
            Role::RngKey => {
                Literal::from_vec(&[2], &[seed, 0x005E_ED0F_D20F_0A7C]).expect("two key words")
            }
        };
        out.push(literal);
    }
    out
}

/// Copies of the state a run holds on the host at once: the initial values while they are
/// uploaded, or at a checkpoint the downloaded state and its serialized file.
const HOST_STATE_COPIES: usize = 2;

/// Refuses a model whose training state this host cannot hold, before anything is allocated:
/// names the state's size, the largest tensor (where an oversized spec field shows) and the
/// machine's memory.
pub fn check_host_memory(model: &Model, layout: &StateLayout) -> Result<()> {
    let Some(memory) = physical_memory() else {
        return Ok(());
    };
    let needed = layout.byte_size().saturating_mul(HOST_STATE_COPIES);
    if needed <= memory {
        return Ok(());
    }
    let largest = layout
        .entries()
        .iter()
        .rev() // the first of equal ones: the variable rather than its optimizer slots
        .max_by_key(|e| e.shape.byte_size())
        .expect("a model has state");
    const GIB: f64 = (1u64 << 30) as f64;
    bail!(
        "model '{}' needs {:.1} GiB of host memory for its training state ({} tensors, the largest \
         '{}' with dimensions {:?}), more than this machine's {:.1} GiB: check the spec's sizes",
        model.spec.name,
        needed as f64 / GIB,
        layout.len(),
        largest.name,
        largest.shape.dims(),
        memory as f64 / GIB
    )
}

/// This machine's physical memory in bytes, where the OS reports it (`MemTotal` in Linux's
/// `/proc/meminfo`).
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}
