//! The search's picture: every scored candidate's proxy accuracy against its step time (as a
//! multiple of the backbone's), the Pareto front joined, the backbone and the best candidate by
//! reward labelled.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::results::{accuracy_and_relative_step, Record};
use crate::report::plot::figure::{self, Figure, FONT};

const SIZE: (u32, u32) = (1200, 800);
const CANDIDATE: RGBColor = RGBColor(31, 119, 180);
const FRONT: RGBColor = RGBColor(214, 39, 40);
const BACKBONE: RGBColor = RGBColor(44, 160, 44);
const BEST: RGBColor = RGBColor(148, 103, 189);

struct ParetoPlot<'a> {
    records: &'a [Record],
    front: &'a [String],
    title: String,
}

/// Writes the plot of `records` (with the Pareto front `front`, by name) as `png` and `svg`.
pub fn write(
    records: &[Record],
    front: &[String],
    space: &str,
    png: &Path,
    svg: &Path,
) -> Result<()> {
    let plot = ParetoPlot {
        records,
        front,
        title: format!("Search space {space}: proxy accuracy against step time"),
    };
    figure::write_png(&plot, png)?;
    figure::write_svg(&plot, svg)
}

impl Figure for ParetoPlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        self.chart(root).map_err(|e| anyhow!("{e}"))
    }
}

impl ParetoPlot<'_> {
    fn chart<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        // (step relative to the backbone's, accuracy %, name, index)
        let points: Vec<(f64, f64, &str, usize)> = accuracy_and_relative_step(self.records)
            .into_iter()
            .map(|(r, accuracy, step)| (step, accuracy * 100.0, r.name.as_str(), r.index))
            .collect();
        let best = self
            .records
            .iter()
            .filter(|r| r.index > 0)
            .filter_map(|r| Some((r.name.as_str(), r.reward()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(name, _)| name);
        let span = |values: Vec<f64>| {
            let (low, high) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            if low.is_finite() {
                let pad = ((high - low) * 0.1).max(1e-3);
                (low - pad)..(high + pad)
            } else {
                0.0..1.0
            }
        };
        let x = span(points.iter().map(|p| p.0).collect());
        let y = span(points.iter().map(|p| p.1).collect());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc("training-step time / the backbone's")
            .y_desc("proxy top-1 accuracy (%)")
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw()?;
        let on_front = |name: &str| self.front.iter().any(|f| f == name);
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| !on_front(p.2))
                    .map(|p| Circle::new((p.0, p.1), 5, CANDIDATE.filled())),
            )?
            .label("candidate")
            .legend(|(x, y)| Circle::new((x, y), 5, CANDIDATE.filled()));
        // Joined in the front's own order (fastest first), not the records'.
        let front: Vec<(f64, f64)> = self
            .front
            .iter()
            .filter_map(|name| points.iter().find(|p| p.2 == name.as_str()))
            .map(|p| (p.0, p.1))
            .collect();
        chart.draw_series(LineSeries::new(
            front.iter().copied(),
            FRONT.stroke_width(2),
        ))?;
        chart
            .draw_series(front.iter().map(|&p| Circle::new(p, 6, FRONT.filled())))?
            .label("Pareto front")
            .legend(|(x, y)| Circle::new((x, y), 6, FRONT.filled()));
        for (step, top1, name, index) in &points {
            let (colour, label) = if *index == 0 {
                (BACKBONE, format!("backbone {name}"))
            } else if Some(*name) == best {
                (BEST, format!("best reward {name}"))
            } else {
                continue;
            };
            chart.draw_series([
                Circle::new((*step, *top1), 9, colour.stroke_width(3)),
                Circle::new((*step, *top1), 1, colour.filled()),
            ])?;
            // Beside the marker, not over it.
            chart.draw_series([EmptyElement::at((*step, *top1))
                + Text::new(label, (12, -8), (FONT, 16).into_font().color(&colour))])?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        Ok(())
    }
}
