//! `vigil-evaluator backtest`: replays alerting rules over past data from a
//! datasource and prints what they would have done (see
//! [`crate::backtest`] and docs/backtest.md): per rule by default, the
//! difference to a baseline with `--baseline`/`--baseline-git`, or one
//! rule at many thresholds with `--sweep`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;

use crate::backtest::range::{self, human_duration, show, TimeRange};
use crate::backtest::write::BacktestWriter;
use crate::backtest::report::{self, RuleReport};
use crate::backtest::{self, compare, notify, sweep, Settings, Simulation, Target};
use crate::clock::{Clock, SystemClock};
use crate::datasource::{DatasourceClient, DatasourceSettings};
use crate::notify::config::parse_duration;
use crate::notify::receivers::http::HttpSettings;
use crate::rules::file::{load_rule_files, parse_rule_file, GroupSpec};

/// How the results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// One line per rule (or per difference, or per threshold).
    #[default]
    Table,
    /// Everything, including each episode, as one JSON document.
    Json,
    /// One line per episode: rule, alert labels, start, end, duration.
    Episodes,
}

/// The command line of `backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Base URL of a Prometheus-compatible query API holding the past
    /// (Prometheus, VictoriaMetrics, Thanos, Mimir...).
    #[arg(long, value_name = "URL")]
    pub datasource: String,
    /// Start of the range: RFC 3339, Unix seconds, `now`, or how long ago (7d, 2h).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the range (same forms as --from).
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub to: String,
    /// Alertmanager-format notification config to count notifications with
    /// (default: one receiver `default`, grouped by alertname, group_wait
    /// 30s, group_interval 5m, repeat_interval 4h).
    #[arg(long = "notify-config", value_name = "FILE")]
    pub notify_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Longest range accepted.
    #[arg(long, value_name = "DURATION", default_value = "31d")]
    pub max_range: String,
    /// Interval of rule groups that set none (Prometheus' evaluation_interval).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub evaluation_interval: String,
    /// How often a firing alert is re-sent to the notifier (Prometheus'
    /// --rules.alert.resend-delay).
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub resend_delay: String,
    /// An episode starting within this long after the previous episode of
    /// the same alert ended counts as a flap.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub flap_window: String,
    /// Compare with these (old) rule files; repeat for several.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["baseline_git", "sweep"])]
    pub baseline: Vec<PathBuf>,
    /// Compare with the rule files as they are at this git revision
    /// (`git show REV:FILE` for each RULE_FILE).
    #[arg(long, value_name = "REV", conflicts_with = "sweep")]
    pub baseline_git: Option<String>,
    /// Replay one rule with each threshold:
    /// 'ALERTNAME[{label=value}]:FROM:TO:STEP'.
    #[arg(long, value_name = "SPEC")]
    pub sweep: Option<String>,
    /// Also write the backtested `ALERTS` and `ALERTS_FOR_STATE` series to
    /// this remote-write URL (e.g. VictoriaMetrics' /api/v1/write).
    #[arg(long, value_name = "URL", conflicts_with = "sweep")]
    pub remote_write: Option<String>,
    /// Rule files (Prometheus format).
    #[arg(required = true, value_name = "RULE_FILES")]
    pub files: Vec<PathBuf>,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).map_err(|e| anyhow!("--{flag} {text:?}: {e}"))
}

/// Runs the subcommand; prints the results to stdout.
pub fn run(args: &BacktestArgs) -> anyhow::Result<bool> {
    let now = SystemClock.now();
    let from = range::parse_time(&args.from, now).map_err(|e| anyhow!("--from: {e}"))?;
    let to = range::parse_time(&args.to, now).map_err(|e| anyhow!("--to: {e}"))?;
    let range = TimeRange::new(from, to, duration("max-range", &args.max_range)?)
        .map_err(|e| anyhow!(e))?;
    let settings = Settings {
        range,
        default_interval: duration("evaluation-interval", &args.evaluation_interval)?,
        resend_delay: duration("resend-delay", &args.resend_delay)?,
        flap_window: duration("flap-window", &args.flap_window)?,
    };
    if settings.default_interval.is_zero() {
        bail!("--evaluation-interval must be above 0s");
    }
    let groups = load_rule_files(&args.files)?;
    let notify_config =
        notify::load_config(args.notify_config.as_deref()).map_err(|e| anyhow!(e))?;
    for (alert, recorded) in backtest::recorded_series_read(&groups) {
        eprintln!("note: {alert} reads {recorded}, which a recording rule of these files writes; a backtest does not replay recording rules, so the datasource must hold {recorded} for the range");
    }
    let client = datasource_client(&args.datasource)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        anyhow!("cannot start the async runtime: {e}; the process may be out of threads or file descriptors (check ulimit -u / -n)")
    })?;
    let current = backtest::targets(&groups, settings.default_interval);
    let notifications_from = args.notify_config.as_ref().map_or_else(
        || "the default route (group_by alertname, group_wait 30s, group_interval 5m, repeat_interval 4h; --notify-config for yours)".to_string(),
        |p| p.display().to_string(),
    );
    let header = format!(
        "Backtest {} – {} ({}) against {}; notifications counted with {}",
        show(range.from_ms),
        show(range.to_ms),
        human_duration(range.length()),
        args.datasource,
        notifications_from
    );

    if let Some(spec) = &args.sweep {
        return run_sweep(&runtime, &client, &settings, &current, notify_config, spec, args.output, &header);
    }
    let baseline_groups = if let Some(rev) = &args.baseline_git {
        Some(groups_at_revision(rev, &args.files)?)
    } else if !args.baseline.is_empty() {
        Some(load_rule_files(&args.baseline).context("in the --baseline rule files")?)
    } else {
        None
    };
    if current.is_empty() && baseline_groups.is_none() {
        bail!(
            "no alerting rules in {}: a backtest replays alerting rules only",
            list(&args.files)
        );
    }
    let mut simulations = vec![Simulation {
        targets: current,
        notify: Arc::clone(&notify_config),
        write: true,
    }];
    if let Some(groups) = &baseline_groups {
        simulations.push(Simulation {
            targets: backtest::targets(groups, settings.default_interval),
            notify: notify_config,
            write: false,
        });
    }
    let mut writer = args
        .remote_write
        .as_deref()
        .map(BacktestWriter::new)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut reports = runtime
        .block_on(backtest::run(&client, &settings, simulations, writer.as_mut()))
        .map_err(|e| anyhow!(e))?;
    if let (Some(w), Some(url)) = (&writer, &args.remote_write) {
        eprintln!("wrote {} samples of ALERTS and ALERTS_FOR_STATE to {url}", w.sent);
    }
    let changed = reports.remove(0);
    let baseline = reports.pop();
    let text = match (baseline, args.output) {
        (None, Output::Table) => format!("{header}\n\n{}", report::table(&changed)),
        (None, Output::Episodes) => report::episodes(&changed),
        (None, Output::Json) => json_text(&json!({
            "from": show(range.from_ms), "to": show(range.to_ms), "rules": changed,
        }))?,
        (Some(baseline), Output::Json) => json_text(&json!({
            "from": show(range.from_ms), "to": show(range.to_ms),
            "baseline": baseline, "changed": changed,
            "differences": compare::compare(&baseline, &changed),
        }))?,
        (Some(baseline), Output::Episodes) => format!(
            "Baseline:\n{}\nChanged:\n{}",
            report::episodes(&baseline),
            report::episodes(&changed)
        ),
        (Some(baseline), Output::Table) => format!(
            "{header}\n\nBaseline → changed:\n{}",
            compare::text(&compare::compare(&baseline, &changed))
        ),
    };
    print!("{text}");
    Ok(true)
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_text(value: &serde_json::Value) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// A client for `--datasource`.
fn datasource_client(url: &str) -> anyhow::Result<DatasourceClient> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        anyhow!("--datasource {url:?} is not a URL ({e}); write it as http://HOST:PORT")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--datasource {url:?}: the scheme must be http or https");
    }
    let settings = DatasourceSettings {
        url: url.trim_end_matches('/').to_string(),
        headers: Vec::new(),
        query_timeout: Duration::from_secs(120),
        query_offset: None,
        retries: 0,
        http: HttpSettings::default(),
    };
    let errors = prometheus::IntCounter::new(
        "vigil_backtest_datasource_errors_total",
        "Failed backtest queries.",
    )?;
    DatasourceClient::new(settings, Arc::new(SystemClock), errors)
        .map_err(|e| anyhow!("cannot set up the HTTP client for --datasource {url}: {e}"))
}

/// The rule files as they are at git revision `rev`.
fn groups_at_revision(rev: &str, files: &[PathBuf]) -> anyhow::Result<Vec<GroupSpec>> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = file
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file name", file.display()))?;
        let object = format!("{rev}:./{}", name.to_string_lossy());
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["show", &object])
            .output()
            .map_err(|e| anyhow!("--baseline-git: cannot run git: {e}; is git installed and on PATH?"))?;
        if !output.status.success() {
            bail!(
                "--baseline-git {rev}: `git -C {} show {object}` failed: {}; is {} in a git repository, and did it exist at {rev}?",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim(),
                file.display()
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let shown = PathBuf::from(format!("{rev}:{}", file.display()));
        match parse_rule_file(&shown, &text) {
            Ok(g) => groups.extend(g),
            Err(e) => problems.extend(e.problems),
        }
    }
    if !problems.is_empty() {
        return Err(crate::rules::file::RuleFileError { problems })
            .context(format!("in the rule files at --baseline-git {rev}"));
    }
    Ok(groups)
}

/// One line of a sweep's results.
#[derive(Debug, serde::Serialize)]
struct SweepRow {
    threshold: f64,
    expr: String,
    episodes: usize,
    episodes_per_week: f64,
    notifications: u64,
    notifications_per_week: f64,
    firing_seconds: f64,
    near_misses: u64,
    flaps: usize,
}

#[allow(clippy::too_many_arguments)]
fn run_sweep(
    runtime: &tokio::runtime::Runtime,
    client: &DatasourceClient,
    settings: &Settings,
    targets: &[Target],
    notify_config: Arc<crate::notify::config::NotifyConfig>,
    spec: &str,
    output: Output,
    header: &str,
) -> anyhow::Result<bool> {
    let spec = sweep::parse_sweep(spec).map_err(|e| anyhow!(e))?;
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| spec.selects(&t.spec.alert, &t.spec.labels))
        .collect();
    let target = match chosen.as_slice() {
        [one] => *one,
        [] => bail!(
            "--sweep: no alerting rule {}{} in the rule files; the rules are: {}",
            spec.alertname,
            if spec.labels.is_empty() { String::new() } else { format!(" with labels {:?}", spec.labels) },
            targets.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", ")
        ),
        many => bail!(
            "--sweep: {} rules match ({}); add their labels to pick one, e.g. '{}{{severity=warning}}:...'",
            many.len(),
            many.iter().map(|t| t.key.as_str()).collect::<Vec<_>>().join(", "),
            spec.alertname
        ),
    };
    let comparison =
        sweep::find_comparison(&target.key, &target.spec.expr).map_err(|e| anyhow!(e))?;
    let simulations = spec
        .values
        .iter()
        .map(|&value| {
            let mut t = target.clone();
            t.spec.expr = comparison.expr_with(value);
            t.query = comparison.other_side.clone();
            t.threshold = Some((comparison.clone(), value));
            Simulation {
                targets: vec![t],
                notify: Arc::clone(&notify_config),
                write: false,
            }
        })
        .collect();
    let reports = runtime
        .block_on(backtest::run(client, settings, simulations, None))
        .map_err(|e| anyhow!(e))?;
    let weeks = settings.range.length().as_secs_f64() / (7.0 * 86_400.0);
    let rows: Vec<SweepRow> = reports
        .iter()
        .zip(&spec.values)
        .filter_map(|(r, &threshold)| {
            let r: &RuleReport = r.first()?;
            Some(SweepRow {
                threshold,
                expr: r.expr.clone(),
                episodes: r.episodes,
                episodes_per_week: r.episodes as f64 / weeks,
                notifications: r.notifications_total,
                notifications_per_week: r.notifications_total as f64 / weeks,
                firing_seconds: r.firing_seconds,
                near_misses: r.near_misses,
                flaps: r.flaps,
            })
        })
        .collect();
    let text = match output {
        Output::Json => json_text(&json!({
            "from": show(settings.range.from_ms), "to": show(settings.range.to_ms),
            "rule": target.key, "expr": target.spec.expr, "threshold_in_rule": comparison.constant,
            "values": rows,
        }))?,
        Output::Episodes => {
            let flat: Vec<RuleReport> = reports.into_iter().flatten().collect();
            report::episodes(&flat)
        }
        Output::Table => {
            let mut table = vec![[
                "THRESHOLD",
                "EPISODES",
                "EPISODES/WEEK",
                "NOTIFICATIONS",
                "NOTIFICATIONS/WEEK",
                "FIRING",
                "NEAR MISSES",
                "FLAPS",
            ]
            .map(String::from)
            .to_vec()];
            for row in &rows {
                let mark = if row.threshold == comparison.constant { " (rule)" } else { "" };
                table.push(vec![
                    format!("{}{mark}", row.threshold),
                    row.episodes.to_string(),
                    format!("{:.1}", row.episodes_per_week),
                    row.notifications.to_string(),
                    format!("{:.1}", row.notifications_per_week),
                    human_duration(Duration::from_secs_f64(row.firing_seconds)),
                    row.near_misses.to_string(),
                    row.flaps.to_string(),
                ]);
            }
            format!(
                "{header}\n\nSweep of {}: {}\n\n{}",
                target.key,
                comparison.expr_with_text("THRESHOLD"),
                report::columns(&table)
            )
        }
    };
    print!("{text}");
    Ok(true)
}
