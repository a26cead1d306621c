//! Reports of runs: the plot and text summary of a run's metrics log (`effnetv2 report`), the
//! figure machinery the search's Pareto plot also draws with, and the table printed after a run.
pub mod plot;
pub mod run_summary;
