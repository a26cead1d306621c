//! JPEG decoding variants, as ratios against decoding whole images, measured in alternating
//! turns in one run (the order rotates each turn, after an untimed turn):
//! - `decode_rgb_top` down to the bottom of S's random training crop (area 5-100 %, drawn by
//!   `random_crop` per image and turn), which skips entropy-decoding the rows below it;
//! - the images re-encoded as `data pack --max-side` does (quality 90, 4:2:0), with the
//!   encoder's standard Huffman tables (one interleaved scan, zune-jpeg) and with its optimised
//!   ones (one scan per component, which `decode_rgb` gives to jpeg-decoder), with their sizes.
//!
//! Run with `cargo bench --bench jpeg_decode [-- DIR]`: the JPEGs of DIR (for example those of
//! `tools/imagenet_like_jpegs.py`), by default scikit-learn's two baseline 640x427 photos
//! (fetched into the user cache, see `tests/data_support`). Prints the median of the per-turn
//! ratios and every turn's; the shared development machine's load moves single turns by 20 %.
//! Everything runs on one thread, in a rayon pool of one: jpeg-decoder spreads the components of
//! an image over rayon's current pool, which in the loader is busy with other images, so a
//! per-core figure must not count that help.

#[path = "../tests/data_support/mod.rs"]
mod data_support;

use std::path::PathBuf;
use std::time::Instant;

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::transform::random_crop;
use effnetv2::data::{decode_rgb, decode_rgb_top, AugmentSettings, Preprocessing};
use jpeg_encoder::{Encoder, SamplingFactor};

/// Timed turns per variant (plus one untimed).
const TURNS: usize = 12;
/// Passes over the files per turn.
const PASSES: usize = 4;

/// Every JPEG of `dir` (sorted by name), or the default fixtures.
fn jpegs(dir: Option<PathBuf>) -> Vec<Vec<u8>> {
    let paths = match dir {
        Some(dir) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .map(|entry| entry.expect("directory entry").path())
                .filter(|path| path.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
                .collect();
            paths.sort();
            paths
        }
        None => {
            let sklearn = data_support::sklearn_images();
            vec![sklearn.join("china.jpg"), sklearn.join("flower.jpg")]
        }
    };
    assert!(!paths.is_empty(), "no JPEG found");
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("readable JPEG"))
        .collect()
}

/// `jpeg` decoded and re-encoded at quality 90, 4:2:0, with optimised Huffman tables or not.
fn reencode(jpeg: &[u8], optimised: bool) -> Vec<u8> {
    let image = decode_rgb(jpeg, "bench").expect("decodable JPEG");
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(&mut bytes, 90);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_optimized_huffman_tables(optimised);
    let (width, height) = (image.width() as u16, image.height() as u16);
    encoder
        .encode(image.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encodable image");
    bytes
}

/// Decodes every image of `set` whole (whatever the turn).
fn decode_each(set: &[Vec<u8>]) -> impl Fn(usize) + '_ {
    move |_turn| {
        for jpeg in set {
            std::hint::black_box(decode_rgb(jpeg, "bench").expect("decodable JPEG"));
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool of one thread")
        .install(run);
}

fn run() {
    let dir = std::env::args()
        .nth(1)
        .filter(|a| a != "--bench")
        .map(PathBuf::from);
    let files = jpegs(dir);
    let area_min = AugmentSettings::default().crop_area_min(Preprocessing::Standard);
    // The bottom row of a random crop per file and turn, drawn from the images' own sizes.
    let bottoms: Vec<Vec<u32>> = (0..=TURNS)
        .map(|turn| {
            files
                .iter()
                .enumerate()
                .map(|(i, jpeg)| {
                    let image = decode_rgb(jpeg, "bench").expect("decodable JPEG");
                    let index = (turn * files.len() + i) as u64;
                    let mut rng = stream(0, 0, index, Purpose::Augment);
                    let crop = random_crop(image.width(), image.height(), area_min, &mut rng);
                    crop.y + crop.height
                })
                .collect()
        })
        .collect();
    let heights: Vec<u32> = files
        .iter()
        .map(|jpeg| decode_rgb(jpeg, "bench").unwrap().height())
        .collect();
    let kept: f64 = bottoms
        .iter()
        .flat_map(|turn| {
            turn.iter()
                .zip(&heights)
                .map(|(b, h)| f64::from(*b) / f64::from(*h))
        })
        .sum::<f64>()
        / ((TURNS + 1) * files.len()) as f64;
    let standard: Vec<Vec<u8>> = files.iter().map(|jpeg| reencode(jpeg, false)).collect();
    let optimised: Vec<Vec<u8>> = files.iter().map(|jpeg| reencode(jpeg, true)).collect();
    let bytes = |set: &[Vec<u8>]| set.iter().map(Vec::len).sum::<usize>();
    println!(
        "{} JPEGs, {} bytes; random crops keep the top {:.1} % of the rows on average",
        files.len(),
        bytes(&files),
        100.0 * kept
    );
    println!(
        "re-encoded at quality 90, 4:2:0: {} bytes with standard Huffman tables, {} with \
         optimised ones ({:.3}x)",
        bytes(&standard),
        bytes(&optimised),
        bytes(&optimised) as f64 / bytes(&standard) as f64
    );

    type Variant<'a> = (&'a str, Box<dyn Fn(usize) + 'a>);
    let variants: Vec<Variant> = vec![
        ("whole image", Box::new(decode_each(&files))),
        (
            "down to the crop's bottom (decode_rgb_top)",
            Box::new(|turn: usize| {
                for (jpeg, &rows) in files.iter().zip(&bottoms[turn]) {
                    let top = decode_rgb_top(jpeg, "bench", rows).expect("decodable JPEG");
                    std::hint::black_box(top);
                }
            }),
        ),
        (
            "re-encoded, standard tables",
            Box::new(decode_each(&standard)),
        ),
        (
            "re-encoded, optimised tables",
            Box::new(decode_each(&optimised)),
        ),
    ];
    let mut seconds = vec![Vec::new(); variants.len()];
    for turn in 0..=TURNS {
        for k in 0..variants.len() {
            let v = (k + turn) % variants.len();
            let start = Instant::now();
            for _ in 0..PASSES {
                (variants[v].1)(turn);
            }
            if turn > 0 {
                seconds[v].push(start.elapsed().as_secs_f64());
            }
        }
    }
    let per_image = |s: f64| s / (PASSES * files.len()) as f64 * 1e3;
    for (v, (name, _)) in variants.iter().enumerate() {
        let ratios: Vec<f64> = seconds[0]
            .iter()
            .zip(&seconds[v])
            .map(|(b, t)| b / t)
            .collect();
        let turns: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{name:44} {:.3} ms/image (median turn), {:.2}x the speed of whole images \
             (turns: {})",
            per_image(median(seconds[v].clone())),
            median(ratios.clone()),
            turns.join(" ")
        );
    }
    let tables: Vec<f64> = seconds[2]
        .iter()
        .zip(&seconds[3])
        .map(|(s, o)| s / o)
        .collect();
    println!(
        "optimised tables decode at {:.2}x the speed of standard ones (median turn)",
        median(tables)
    );
}
