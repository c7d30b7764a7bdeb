//! Layer and image tests: `[[test]]` in layer.toml runs in a sandbox
//! holding only that layer and its `[runtime]` stack (so a missing runtime
//! dependency fails here, not in production); `[[images.NAME.test]]` runs
//! in the composed image. A passed test is remembered by what it ran over
//! (the test and the diff_ids beneath it) and not run again unless asked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::project::TestDef;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::Layer;
use crate::sandbox::{Network, Output, RunSpec, Sandbox};
use crate::store::Store;

/// Version of how tests run; part of what a remembered pass is keyed by.
pub const TEST_FORMAT: u32 = 1;

/// Lines of a test's output kept for the report.
const KEPT_LINES: usize = 200;

/// One test's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// `layer NAME` or `image NAME`.
    pub target: String,
    /// The command.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Passed before over the same layers, not run again.
    pub cached: bool,
    /// Exit status (when it ran).
    pub status: Option<i32>,
    /// When it started, in seconds from the start of the test run (tests
    /// run in parallel).
    pub started: f64,
    /// Seconds it took.
    pub seconds: f64,
    /// What was wrong (on failure).
    pub problem: Option<String>,
    /// Its output (on failure; the last 200 lines).
    pub output: Vec<String>,
}

/// What a set of tests runs over.
pub struct TestTarget<'a> {
    /// `layer NAME` or `image NAME`.
    pub label: String,
    /// The layers, base first.
    pub layers: Vec<Arc<dyn Layer>>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// The tests.
    pub tests: &'a [TestDef],
}

fn pass_key(t: &TestDef, layers: &[Arc<dyn Layer>], env: &[String]) -> Digest {
    let mut doc = serde_json::json!({
        "format": TEST_FORMAT,
        "test": t,
        "env": env,
    });
    doc["layers"] = layers
        .iter()
        .map(|l| serde_json::Value::String(l.diff_id().to_string()))
        .collect();
    Digest::of(&crate::json::to_canonical(&doc))
}

/// Runs the tests of `targets` (remembered passes skipped unless `rerun`),
/// up to `jobs` at a time: each test has a sandbox of its own over
/// snapshots they share. The reports come in the order of the targets and
/// their tests; the first error, if any, is returned once all have ended.
pub fn run_all(
    store: &Store,
    targets: &[TestTarget<'_>],
    rerun: bool,
    jobs: usize,
) -> Result<Vec<TestReport>> {
    let work: Vec<(usize, &TestDef)> = targets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.tests.iter().map(move |d| (i, d)))
        .collect();
    if work.is_empty() {
        return Ok(Vec::new());
    }
    let sandbox = Sandbox::new(store.root())?;
    let snaps: Vec<Vec<std::path::PathBuf>> = targets
        .iter()
        .map(|t| sandbox.snapshots(&t.layers))
        .collect::<Result<_>>()?;
    let passes = store.root().join(".strata/tests");
    let epoch = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<TestReport>>>> =
        work.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, work.len()) {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(ti, t)) = work.get(n) else { break };
                    let job = Job {
                        sandbox: &sandbox,
                        snaps: &snaps[ti],
                        target: &targets[ti],
                        passes: &passes,
                        epoch,
                    };
                    let r = job.run(t, rerun);
                    *results[n].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(Error::Unsupported("a test runner thread panicked".into())))
        })
        .collect()
}

/// One test's surroundings.
struct Job<'a> {
    sandbox: &'a Sandbox,
    snaps: &'a [std::path::PathBuf],
    target: &'a TestTarget<'a>,
    passes: &'a std::path::Path,
    epoch: std::time::Instant,
}

impl Job<'_> {
    /// Runs test `t` (or finds its pass remembered).
    fn run(&self, t: &TestDef, rerun: bool) -> Result<TestReport> {
        let target = self.target;
        let key = pass_key(t, &target.layers, &target.env);
        let marker = self.passes.join(key.hex());
        let mut report = TestReport {
            target: target.label.clone(),
            name: t.command.shown(),
            passed: true,
            cached: true,
            status: None,
            started: 0.0,
            seconds: 0.0,
            problem: None,
            output: Vec::new(),
        };
        if !rerun && marker.exists() {
            return Ok(report);
        }
        report.cached = false;
        let started = std::time::Instant::now();
        report.started = started.duration_since(self.epoch).as_secs_f64();
        let mounted = self.sandbox.mount(self.snaps)?;
        let cwd = mounted.rootfs().join(target.cwd.trim_start_matches('/'));
        std::fs::create_dir_all(&cwd).at(&cwd)?;
        let spec = RunSpec {
            args: t.command.argv(),
            env: target.env.clone(),
            cwd: target.cwd.clone(),
            network: Network::None,
            timeout: Some(std::time::Duration::from_secs(t.timeout.unwrap_or(300))),
            ..Default::default()
        };
        let all = Mutex::new(String::new());
        let line = |l: &str| {
            let mut a = all.lock().expect("lock");
            if a.len() < 1 << 20 {
                a.push_str(l);
                a.push('\n');
            }
        };
        let outcome = mounted.run(
            &spec,
            &mut Output {
                log: &mut std::io::sink(),
                line: &line,
                redact: &[],
            },
        )?;
        drop(mounted);
        let text = all.into_inner().expect("lock");
        report.status = Some(outcome.status);
        report.seconds = started.elapsed().as_secs_f64();
        report.problem = check(t, outcome.status, outcome.timed_out, &text)?;
        report.passed = report.problem.is_none();
        if report.passed {
            std::fs::create_dir_all(self.passes).at(self.passes)?;
            std::fs::write(&marker, b"").at(&marker)?;
        } else {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(KEPT_LINES);
            report.output = lines[from..].iter().map(|l| l.to_string()).collect();
        }
        Ok(report)
    }
}

/// What is wrong with a test's outcome, if anything.
fn check(t: &TestDef, status: i32, timed_out: bool, output: &str) -> Result<Option<String>> {
    if timed_out {
        return Ok(Some(format!(
            "it ran out of time ({} s) and was killed",
            t.timeout.unwrap_or(300)
        )));
    }
    if status != t.status {
        return Ok(Some(format!("exit status {status}, expected {}", t.status)));
    }
    if let Some(want) = &t.contains
        && !output.contains(want.as_str())
    {
        return Ok(Some(format!("the output does not contain {want:?}")));
    }
    if let Some(re) = &t.matches {
        let r = regex::Regex::new(re)
            .map_err(|e| Error::bad_input(format!("test matches {re:?}"), e.to_string()))?;
        if !r.is_match(output) {
            return Ok(Some(format!("the output does not match /{re}/")));
        }
    }
    Ok(None)
}

/// The tests' outcome as JUnit XML (one testsuite per target).
pub fn junit(reports: &[TestReport]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect::<String>()
    };
    let mut targets: Vec<&str> = reports.iter().map(|r| r.target.as_str()).collect();
    targets.dedup();
    let failures = reports.iter().filter(|r| !r.passed).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"strata\" tests=\"{}\" failures=\"{failures}\">\n",
        reports.len()
    );
    for target in targets {
        let mine: Vec<&TestReport> = reports.iter().filter(|r| r.target == target).collect();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
            esc(target),
            mine.len(),
            mine.iter().filter(|r| !r.passed).count()
        ));
        for r in mine {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(target),
                esc(&r.name),
                r.seconds
            ));
            match &r.problem {
                None => x.push_str("/>\n"),
                Some(p) => x.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    esc(p),
                    esc(&r.output.join("\n"))
                )),
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::super::project::Command;
    use super::*;

    fn def(status: i32, contains: Option<&str>, matches: Option<&str>) -> TestDef {
        TestDef {
            command: Command::Shell("x".into()),
            status,
            contains: contains.map(str::to_string),
            matches: matches.map(str::to_string),
            timeout: None,
        }
    }

    #[test]
    fn outcomes_are_checked_against_status_substring_and_regex() {
        assert_eq!(check(&def(0, None, None), 0, false, "").unwrap(), None);
        assert!(
            check(&def(0, None, None), 1, false, "")
                .unwrap()
                .unwrap()
                .contains("exit status 1")
        );
        assert_eq!(check(&def(2, None, None), 2, false, "").unwrap(), None);
        assert!(
            check(&def(0, Some("git version"), None), 0, false, "nope")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            check(&def(0, Some("git"), None), 0, false, "git version 2").unwrap(),
            None
        );
        assert_eq!(
            check(&def(0, None, Some(r"^v\d+\.\d+")), 0, false, "v1.2\n").unwrap(),
            None
        );
        assert!(
            check(&def(0, None, Some(r"^v\d+")), 0, false, "x")
                .unwrap()
                .is_some()
        );
        assert!(check(&def(0, None, Some("(")), 0, false, "x").is_err());
        assert!(
            check(&def(0, None, None), 0, true, "")
                .unwrap()
                .unwrap()
                .contains("out of time")
        );
    }

    #[test]
    fn junit_escapes_and_counts() {
        let r = TestReport {
            target: "layer a".into(),
            name: "echo <x> & \"y\"".into(),
            passed: false,
            cached: false,
            status: Some(1),
            started: 0.0,
            seconds: 0.5,
            problem: Some("exit status 1, expected 0".into()),
            output: vec!["bad \u{1b}[31mred".into()],
        };
        let x = junit(&[r]);
        assert!(x.contains("tests=\"1\" failures=\"1\""), "{x}");
        assert!(x.contains("echo &lt;x&gt; &amp; &quot;y&quot;"), "{x}");
        assert!(!x.contains('\u{1b}'));
    }
}
