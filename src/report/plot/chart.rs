//! The picture half of `effnetv2 report`: four panels against the global step (training loss,
//! train accuracy, eval accuracy, learning rate) and a fifth across the bottom (the share of
//! time the device waited for input), with the progressive stages shaded, their boundaries
//! drawn and each labelled with its image size.

use std::ops::Range;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{Figure, FONT};
use super::log::{EvalRecord, RunLog, StageSpan};
use crate::trainer::infeed::InfeedTime;

/// Width and height of the PNG in pixels (and of the SVG in user units).
pub const PLOT_SIZE: (u32, u32) = (1600, 1300);
/// Height of the input-wait panel across the bottom; the four panels share the rest.
const INFEED_PANEL_HEIGHT: u32 = 300;

/// The fewest steps in the trailing moving average drawn over the noisy per-batch loss and
/// accuracy; long runs average over 2% of their steps so the trend stays readable.
const MIN_SMOOTHING_STEPS: usize = 20;

/// Accuracy axes run past 100% to leave room for the value labels above the points.
const PERCENT_AXIS: Range<f64> = 0.0..108.0;
/// Room between a panel's caption and its plot for the stage labels.
const STAGE_LABEL_ROW: u32 = 26;

/// Per-batch values are drawn faint in the first colour, their moving average in the second.
const LOSS: (RGBColor, RGBColor) = (RGBColor(31, 119, 180), RGBColor(8, 48, 107));
const TRAIN_ACCURACY: (RGBColor, RGBColor) = (RGBColor(240, 130, 20), RGBColor(150, 60, 0));
const TOP1: RGBColor = RGBColor(44, 160, 44);
const TOP5: RGBColor = RGBColor(128, 80, 180);
const LEARNING_RATE: RGBColor = RGBColor(214, 39, 40);
const INFEED: RGBColor = RGBColor(23, 190, 207);
const INFEED_STAGE: RGBColor = RGBColor(10, 100, 110);
const BOUNDARY: RGBColor = RGBColor(70, 70, 70);
const ODD_STAGE_BAND: RGBColor = RGBColor(236, 236, 242);
const GRID: RGBColor = RGBColor(225, 225, 225);

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The run chart of `log`, titled `title`.
pub struct RunChart<'a> {
    pub log: &'a RunLog,
    pub title: &'a str,
}

impl Figure for RunChart<'_> {
    fn size(&self) -> (u32, u32) {
        PLOT_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        draw(root, self.log, self.title).map_err(|e| anyhow!("{e}"))
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    log: &RunLog,
    title: &str,
) -> DrawResult<(), DB> {
    root.fill(&WHITE)?;
    let body = root.titled(title, bold(28.0))?;
    let (_, height) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically(height.saturating_sub(INFEED_PANEL_HEIGHT));
    let panels = top.split_evenly((2, 2));
    let spans = log.stages();
    loss_panel(&panels[0], log, &spans)?;
    train_accuracy_panel(&panels[1], log, &spans)?;
    eval_panel(&panels[2], log, &spans)?;
    learning_rate_panel(&panels[3], log, &spans)?;
    infeed_panel(&bottom, log, &spans)
}

fn loss_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    log: &RunLog,
    spans: &[StageSpan],
) -> DrawResult<(), DB> {
    let (steps, loss): (Vec<f64>, Vec<f64>) = log
        .steps
        .iter()
        .map(|p| (p.step as f64, f64::from(p.loss)))
        .unzip();
    let y = padded_range(&loss);
    let mut chart = panel(
        area,
        "Training loss",
        "loss",
        spans,
        y.clone(),
        &tick_format(&y),
    )?;
    draw_noisy(&mut chart, &steps, &loss, LOSS)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn train_accuracy_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    log: &RunLog,
    spans: &[StageSpan],
) -> DrawResult<(), DB> {
    let (steps, accuracy): (Vec<f64>, Vec<f64>) = log
        .steps
        .iter()
        .map(|p| (p.step as f64, 100.0 * f64::from(p.accuracy)))
        .unzip();
    let caption = "Train accuracy (augmented batches)";
    let mut chart = panel(
        area,
        caption,
        "accuracy",
        spans,
        PERCENT_AXIS,
        &percent_tick,
    )?;
    draw_noisy(&mut chart, &steps, &accuracy, TRAIN_ACCURACY)?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn eval_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    log: &RunLog,
    spans: &[StageSpan],
) -> DrawResult<(), DB> {
    let caption = "Eval accuracy (EMA weights)";
    let mut chart = panel(
        area,
        caption,
        "accuracy",
        spans,
        PERCENT_AXIS,
        &percent_tick,
    )?;
    if log.evals.is_empty() {
        return note(&mut chart, spans, "no evaluation yet");
    }
    let points = |accuracy: fn(&EvalRecord) -> f64| -> Vec<(f64, f64)> {
        log.evals
            .iter()
            .map(|e| (e.step as f64, 100.0 * accuracy(e)))
            .collect()
    };
    draw_eval(&mut chart, "top-1", TOP1, &points(|e| e.top1))?;
    draw_eval(&mut chart, "top-5", TOP5, &points(|e| e.top5))?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn learning_rate_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    log: &RunLog,
    spans: &[StageSpan],
) -> DrawResult<(), DB> {
    let top = log
        .steps
        .iter()
        .map(|p| p.lr)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y = 0.0..if top > 0.0 { 1.08 * top } else { 1.0 };
    let mut chart = panel(
        area,
        "Learning rate",
        "learning rate",
        spans,
        y.clone(),
        &tick_format(&y),
    )?;
    let points = log.steps.iter().map(|p| (p.step as f64, p.lr));
    chart.draw_series(LineSeries::new(points, LEARNING_RATE.stroke_width(2)))?;
    Ok(())
}

/// The share of time the device waited for input: each call's share faint, each stage's
/// (time-weighted over its steps) as a bold level across its band, labelled.
fn infeed_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    log: &RunLog,
    spans: &[StageSpan],
) -> DrawResult<(), DB> {
    let caption = "Device waiting for input (infeed-bound share of wall time)";
    let mut chart = panel(area, caption, "waiting", spans, PERCENT_AXIS, &percent_tick)?;
    let stages: Vec<(&StageSpan, f64)> = spans
        .iter()
        .filter_map(|span| {
            let time: InfeedTime = log.steps_of(span).iter().map(InfeedTime::of_step).sum();
            Some((span, 100.0 * time.share()?))
        })
        .collect();
    if stages.is_empty() {
        return note(&mut chart, spans, "not measured in this log");
    }
    let faint = INFEED.mix(0.5).stroke_width(1);
    let points = log
        .steps
        .iter()
        .map(|p| (p.step as f64, 100.0 * p.infeed_bound));
    chart
        .draw_series(LineSeries::new(points, faint))?
        .label("per call")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], faint));
    let level = INFEED_STAGE.stroke_width(3);
    for (i, &(span, share)) in stages.iter().enumerate() {
        let line = [(span.start() as f64, share), (span.last_step as f64, share)];
        let series = chart.draw_series(LineSeries::new(line, level))?;
        if i == 0 {
            series
                .label("the stage's share")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], level));
        }
    }
    let style = (FONT, 15)
        .into_font()
        .color(&INFEED_STAGE)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(stages.iter().map(|&(span, share)| {
        let middle = (span.start() + span.last_step) as f64 / 2.0;
        EmptyElement::at((middle, share))
            + Text::new(format!("{share:.0}%"), (0, -6), style.clone())
    }))?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// A note in the middle of a percent panel that has nothing to draw.
fn note<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    spans: &[StageSpan],
    text: &'static str,
) -> DrawResult<(), DB> {
    let x = step_range(spans);
    let style = TextStyle::from((FONT, 20)).pos(Pos::new(HPos::Center, VPos::Center));
    chart.draw_series([Text::new(text, ((x.start + x.end) / 2.0, 50.0), style)])?;
    Ok(())
}

/// A panel with its caption, axes, stage bands, boundaries and stage labels over the steps of
/// `spans`; the series are drawn by the caller.
fn panel<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    spans: &[StageSpan],
    y: Range<f64>,
    y_format: &dyn Fn(&f64) -> String,
) -> DrawResult<Chart<'a, DB>, DB> {
    let plot_area = area.titled(caption, bold(22.0))?;
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .margin_top(STAGE_LABEL_ROW)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(step_range(spans), y.clone())?;
    chart.draw_series(spans.iter().skip(1).step_by(2).map(|s| {
        Rectangle::new(
            [(s.start() as f64, y.start), (s.last_step as f64, y.end)],
            ODD_STAGE_BAND.filled(),
        )
    }))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .bold_line_style(GRID)
        .light_line_style(WHITE.mix(0.0))
        .y_label_formatter(y_format)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for s in spans.iter().skip(1) {
        let x = s.start() as f64;
        let line = [(x, y.start), (x, y.end)];
        chart.draw_series(DashedLineSeries::new(line, 8, 6, BOUNDARY.stroke_width(2)))?;
    }
    label_stages(area, &chart, spans, y.end)?;
    Ok(chart)
}

/// Writes each stage's image size centred above its band ("stage 2: 24px", or just "24px"
/// where the band is too narrow for more).
fn label_stages<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<DB>,
    spans: &[StageSpan],
    y_top: f64,
) -> DrawResult<(), DB> {
    let style = (FONT, 16)
        .into_font()
        .color(&BOUNDARY)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let (base_x, base_y) = area.get_base_pixel();
    for s in spans {
        let (left, top) = chart.backend_coord(&(s.start() as f64, y_top));
        let (right, _) = chart.backend_coord(&(s.last_step as f64, y_top));
        let long = format!("stage {}: {}px", s.stage, s.image_size);
        let (width, _) = area.estimate_text_size(&long, &style)?;
        let label = if width as i32 + 8 <= right - left {
            long
        } else {
            format!("{}px", s.image_size)
        };
        area.draw_text(
            &label,
            &style,
            ((left + right) / 2 - base_x, top - 5 - base_y),
        )?;
    }
    Ok(())
}

/// A per-batch series: the raw values faint, their trailing moving average bold and darker.
fn draw_noisy<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    steps: &[f64],
    values: &[f64],
    (raw, smooth): (RGBColor, RGBColor),
) -> DrawResult<(), DB> {
    let faint = raw.mix(0.35).stroke_width(1);
    chart
        .draw_series(LineSeries::new(
            steps.iter().copied().zip(values.iter().copied()),
            faint,
        ))?
        .label("per batch")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], faint));
    let bold = smooth.stroke_width(3);
    let window = smoothing_window(values.len());
    chart
        .draw_series(LineSeries::new(
            steps.iter().copied().zip(moving_average(values, window)),
            bold,
        ))?
        .label(format!("mean of the last {window} steps"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], bold));
    Ok(())
}

fn smoothing_window(steps: usize) -> usize {
    MIN_SMOOTHING_STEPS.max(steps / 50)
}

/// Evaluation results: points at the evaluated steps, joined, each labelled with its value.
fn draw_eval<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    name: &str,
    color: RGBColor,
    points: &[(f64, f64)],
) -> DrawResult<(), DB> {
    let line = color.stroke_width(2);
    chart
        .draw_series(LineSeries::new(points.iter().copied(), line))?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], line));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
    let style = (FONT, 15)
        .into_font()
        .color(&color)
        .pos(Pos::new(HPos::Right, VPos::Bottom));
    chart.draw_series(points.iter().map(|&(x, y)| {
        EmptyElement::at((x, y)) + Text::new(format!("{y:.1}%"), (-7, -7), style.clone())
    }))?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> DrawResult<(), DB> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(10)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .draw()
}

/// A bold face of [`FONT`] (`FontDesc::style` would keep the regular face's glyphs).
fn bold(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Bold)
}

/// Percent labels up to 100% (the axis runs past it only to make room).
fn percent_tick(v: &f64) -> String {
    if *v > 100.0 {
        String::new()
    } else {
        format!("{v:.0}%")
    }
}

/// Tick labels with the decimals that tell apart ticks about a tenth of the range apart.
fn tick_format(range: &Range<f64>) -> impl Fn(&f64) -> String {
    let tick = (range.end - range.start) / 10.0;
    let decimals = if tick > 0.0 {
        (-tick.log10().floor()).max(0.0) as usize
    } else {
        0
    };
    move |v| format!("{v:.decimals$}")
}

/// The step axis: from the count before the first logged step to the last.
fn step_range(spans: &[StageSpan]) -> Range<f64> {
    let start = spans.first().map_or(0, StageSpan::start) as f64;
    let end = spans.last().map_or(1, |s| s.last_step) as f64;
    start..end.max(start + 1.0)
}

/// The span of the finite values with 5% room on either side (a unit span when they are all
/// equal).
fn padded_range(values: &[f64]) -> Range<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    lo - pad..hi + pad
}

/// Trailing moving average: element `i` is the mean of the `window` values ending at `i` (of
/// all of them while fewer than `window` have been seen).
fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let mut sum = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            sum += v;
            if i >= window {
                sum -= values[i - window];
            }
            sum / (i + 1).min(window) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_is_trailing_and_warms_up() {
        let out = moving_average(&[1.0, 2.0, 3.0, 4.0, 10.0], 3);
        // [1], [1,2], [1,2,3], [2,3,4], [3,4,10]
        assert_eq!(out, [1.0, 1.5, 2.0, 3.0, 17.0 / 3.0]);
    }

    #[test]
    fn ranges_pad_and_survive_degenerate_input() {
        let r = padded_range(&[2.0, 4.0, f64::NAN]);
        assert!(
            (r.start - 1.9).abs() < 1e-12 && (r.end - 4.1).abs() < 1e-12,
            "{r:?}"
        );
        assert_eq!(padded_range(&[3.0]), 2.5..3.5);
        assert_eq!(padded_range(&[]), 0.0..1.0);
    }

    #[test]
    fn tick_labels_resolve_a_tenth_of_the_range() {
        assert_eq!(tick_format(&(0.0..0.0136))(&0.012), "0.012");
        assert_eq!(tick_format(&(2.03..3.02))(&2.1), "2.10");
        assert_eq!(tick_format(&(0.0..230.0))(&150.0), "150");
    }
}
