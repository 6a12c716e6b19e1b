//! What a gradient check found: per input, every check's analytic and numeric values and
//! tolerance, and the worst one.

use super::differences::Check;
use super::GradcheckOptions;

/// One derivative checked: `g . d` from the tape and from differences, and the tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckResult {
    pub analytic: f64,
    pub numeric: f64,
    pub tolerance: f64,
}

impl CheckResult {
    /// Error over tolerance: the check fails above 1 (and when the numeric side is not finite).
    pub fn ratio(&self) -> f64 {
        let err = (self.numeric - self.analytic).abs();
        match err / self.tolerance {
            _ if err == 0.0 => 0.0,
            r if r.is_nan() => f64::INFINITY,
            r => r,
        }
    }
}

/// Which check of an input disagreed most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The derivative by one element (flat row-major index).
    Element(usize),
    /// Along a random direction.
    RandomDirection,
    /// Along the analytic gradient.
    AlongGradient,
    /// Along the random direction, the output projected on its own change along it.
    AlongOutputChange,
}

/// The checks of one input.
#[derive(Clone, Debug)]
pub struct InputReport {
    /// One per element in the full mode (the gradient and its estimate), row-major; none in
    /// the directional mode.
    pub elements: Vec<CheckResult>,
    /// Along a random direction, along the analytic gradient, and along the random direction
    /// with the output projected on its own change (per unit step).
    pub directions: [CheckResult; 3],
    /// The largest error over tolerance, and where.
    pub worst_ratio: f64,
    pub worst: Site,
}

impl InputReport {
    pub fn passed(&self) -> bool {
        self.worst_ratio <= 1.0
    }

    fn at(&self, site: Site) -> CheckResult {
        match site {
            Site::Element(i) => self.elements[i],
            Site::RandomDirection => self.directions[0],
            Site::AlongGradient => self.directions[1],
            Site::AlongOutputChange => self.directions[2],
        }
    }
}

/// Result of [`gradcheck`](super::gradcheck): one report per input.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// Whether every check of every input was within tolerance.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(InputReport::passed)
    }

    /// The largest error-over-tolerance ratio of any check (at most 1 when it passed).
    pub fn worst_ratio(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.worst_ratio)
            .fold(0.0, f64::max)
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            let c = r.at(r.worst);
            writeln!(
                f,
                "input {i}: worst {:?}: analytic {:e}, numeric {:e}, error {:.3e} against a tolerance of {:.3e} (ratio {:.3}) {}",
                r.worst,
                c.analytic,
                c.numeric,
                (c.numeric - c.analytic).abs(),
                c.tolerance,
                r.worst_ratio,
                if r.passed() { "ok" } else { "FAILED" }
            )?;
        }
        Ok(())
    }
}

/// The report of one input's checks, with their tolerances.
pub(super) fn of(
    elements: &[Check],
    directions: &[Check; 3],
    opts: GradcheckOptions,
) -> InputReport {
    let results = |checks: &[Check]| -> Vec<CheckResult> {
        let largest = checks.iter().map(|c| c.analytic.abs()).fold(0.0, f64::max);
        checks
            .iter()
            .map(|c| CheckResult {
                analytic: c.analytic,
                numeric: c.numeric,
                tolerance: opts.safety as f64 * c.error
                    + opts.rtol as f64 * c.analytic.abs()
                    + opts.atol as f64 * largest,
            })
            .collect()
    };
    let elements = results(elements);
    // The third has a projection of its own, and its own scale for `atol`.
    let d = results(&directions[..2]);
    let directions = [d[0], d[1], results(&directions[2..])[0]];
    let sites = (0..elements.len())
        .map(|i| (Site::Element(i), elements[i]))
        .chain([
            (Site::RandomDirection, directions[0]),
            (Site::AlongGradient, directions[1]),
            (Site::AlongOutputChange, directions[2]),
        ]);
    let (mut worst, mut worst_ratio) = (Site::AlongGradient, 0.0);
    for (site, c) in sites {
        if c.ratio() > worst_ratio {
            (worst, worst_ratio) = (site, c.ratio());
        }
    }
    InputReport {
        elements,
        directions,
        worst_ratio,
        worst,
    }
}
