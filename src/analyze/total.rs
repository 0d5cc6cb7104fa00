//! A job's total test time: its change points, each explained by the regressions that add up to
//! it and placed where they begin (the split of a sum lags behind its parts), or marked
//! unexplained when no test's regression accounts for it.

use super::changepoint::{self, Segments};
use super::model::{
    unsigned_zero, BuildRef, Chart, ChartChange, Explanation, JobReport, Options, Regression,
    TotalChange,
};
use super::series::JobSeries;

/// The job's overview and its total-time chart.
/// `tests`: how many tests ran in the job's last build.
pub(super) fn job_overview(
    job: &JobSeries,
    regressions: &[(Regression, Chart)],
    tests: usize,
    o: &Options,
) -> (JobReport, Chart) {
    let n = job.builds.len();
    let (x, at): (Vec<f64>, Vec<usize>) = job
        .totals
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.0)
        .map(|(i, v)| (*v, i))
        .unzip();
    let changes = changepoint::detect(&x, &o.changepoint());
    let seg = Segments::new(&x, &changes);
    let index_of = |b: u64| job.builds.iter().position(|c| c.build == b);
    let mut chart = Chart::of(
        job,
        job.totals
            .iter()
            .map(|v| if *v > 0.0 { *v } else { f64::NAN })
            .collect(),
    );
    // Each regression explains the slowdown of the total nearest to where it begins.
    let split_at: Vec<usize> = changes.iter().map(|c| at[c.index]).collect();
    let mut explains: Vec<Vec<&Regression>> = vec![Vec::new(); changes.len()];
    for (r, _) in regressions {
        let Some(i) = index_of(r.first_build.build) else {
            continue;
        };
        let nearest = (0..changes.len())
            .filter(|&s| seg.medians[s + 1] > seg.medians[s])
            .filter(|&s| split_at[s].abs_diff(i) <= o.min_segment)
            .min_by_key(|&s| split_at[s].abs_diff(i));
        if let Some(s) = nearest {
            explains[s].push(r);
        }
    }
    let mut total_time_changes = Vec::new();
    for (s, c) in changes.iter().enumerate() {
        let (mb, ma) = (seg.medians[s], seg.medians[s + 1]);
        let mut by: Vec<&Regression> = std::mem::take(&mut explains[s]);
        by.sort_by_key(|r| (index_of(r.first_build.build), r.rank));
        let placed = by
            .first()
            .and_then(|r| index_of(r.first_build.build))
            .unwrap_or(split_at[s]);
        let mut mark = ChartChange::new(&seg, s, &at);
        mark.at = placed;
        chart.changes.push(mark);
        let explained_by: Vec<Explanation> = by
            .iter()
            .map(|r| Explanation {
                test: r.test.clone(),
                kind: r.kind,
                first_build: r.first_build.build,
                seconds_added: r.seconds_added,
            })
            .collect();
        total_time_changes.push(TotalChange {
            median_before: mb,
            median_after: ma,
            seconds_added: unsigned_zero(ma - mb),
            p_value: c.p_value,
            first_build: BuildRef::new(&job.builds[placed]),
            detected_at: job.builds[split_at[s]].build,
            explained_seconds: unsigned_zero(explained_by.iter().map(|e| e.seconds_added).sum()),
            unexplained: explained_by.is_empty(),
            explained_by,
        });
    }
    let report = JobReport {
        job: job.job.clone(),
        branch: job.branch.clone(),
        branch_class: job.branch_class.clone(),
        builds: n,
        first_build: BuildRef::new(&job.builds[0]),
        last_build: BuildRef::new(&job.builds[n - 1]),
        tests,
        total_time_median: seg.medians.last().copied().unwrap_or(0.0),
        total_time_changes,
        regressions: regressions.len(),
        seconds_added: unsigned_zero(
            regressions
                .iter()
                .filter(|(r, _)| r.ongoing)
                .map(|(r, _)| r.seconds_added)
                .sum(),
        ),
    };
    (report, chart)
}
