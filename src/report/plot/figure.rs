//! Rendering a figure both ways, as a PNG and as an SVG, from one drawing routine; text uses
//! DejaVu Sans embedded in the binary (the `dejavu` crate), so no system font library is
//! needed. `report`'s run chart and `search`'s Pareto plot are figures.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{ensure, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;

/// The family every text style names: registered with the embedded font, and a generic family
/// an SVG viewer can resolve without it.
pub const FONT: &str = "sans-serif";

/// Something drawn on any plotters backend.
pub trait Figure {
    /// Width and height in pixels (PNG) or user units (SVG).
    fn size(&self) -> (u32, u32);

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Renders `figure` as a PNG at `path`.
pub fn write_png(figure: &impl Figure, path: &Path) -> Result<()> {
    fs::write(path, render_png(figure)?).with_context(|| format!("writing {}", path.display()))
}

/// Renders `figure` as the bytes of a PNG file.
pub fn render_png(figure: &impl Figure) -> Result<Vec<u8>> {
    register_fonts()?;
    let (width, height) = figure.size();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(|e| anyhow::anyhow!("{e}")))
            .context("drawing the PNG")?;
    }
    let image = image::RgbImage::from_raw(width, height, pixels)
        .expect("the buffer holds width x height RGB pixels");
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the PNG")?;
    Ok(png)
}

/// Renders `figure` as an SVG at `path`.
pub fn write_svg(figure: &impl Figure, path: &Path) -> Result<()> {
    fs::write(path, render_svg(figure)?).with_context(|| format!("writing {}", path.display()))
}

/// Renders `figure` as the text of an SVG file.
pub fn render_svg(figure: &impl Figure) -> Result<String> {
    register_fonts()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present().map_err(|e| anyhow::anyhow!("{e}")))
            .context("drawing the SVG")?;
    }
    Ok(svg)
}

/// Registers the embedded DejaVu Sans under [`FONT`] (once per process).
fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    ensure!(ok, "the embedded DejaVu Sans font could not be parsed");
    Ok(())
}
