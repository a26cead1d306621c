//! Text summaries of a run.

use crate::trainer::run::RunSummary;

/// The final summary: one row per stage (with the share of its training time the device waited
/// for input, "infeed") plus the totals.
pub fn summary_table(s: &RunSummary) -> String {
    let mut out =
        String::from("stage  image  steps   img/s  infeed  compile s  stage s   top-1   top-5\n");
    for st in &s.stages {
        out.push_str(&format!(
            "{:>5}  {:>5}  {:>5}  {:>6.0}  {:>5.0}%  {:>9.1}  {:>7.1}  {:>5.2}%  {:>5.2}%\n",
            st.stage,
            st.image_size,
            st.steps,
            st.images_per_sec,
            100.0 * st.infeed_bound,
            st.compile_seconds,
            st.seconds,
            100.0 * st.top1,
            100.0 * st.top5
        ));
    }
    out.push_str(&format!(
        "final top-1 {:.2}%, top-5 {:.2}%, {:.1} s in total{}",
        100.0 * s.final_top1,
        100.0 * s.final_top5,
        s.total_seconds,
        if s.completed {
            ""
        } else {
            " (stopped early: rerun with --resume)"
        }
    ));
    out
}
