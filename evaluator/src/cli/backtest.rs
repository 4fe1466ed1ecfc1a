//! `vigil-evaluator backtest`: replays alerting rules over past data from a
//! datasource and prints what they would have done (see
//! [`crate::backtest`] and docs/backtest.md): per rule by default, the
//! difference to a baseline with `--baseline`/`--baseline-git`, or one
//! rule at many thresholds with `--sweep`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::backtest::modes::{self, Mode, Outcome, SweepRow};
use crate::backtest::range::{self, human_duration, show, TimeRange};
use crate::backtest::report;
use crate::backtest::write::BacktestWriter;
use crate::backtest::{self, compare, notify, sweep, Settings};
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

    let mode = if let Some(spec) = &args.sweep {
        Mode::Sweep(sweep::parse_sweep(spec).map_err(|e| anyhow!(e))?)
    } else if let Some(rev) = &args.baseline_git {
        Mode::Baseline(backtest::targets(
            &groups_at_revision(rev, &args.files)?,
            settings.default_interval,
        ))
    } else if !args.baseline.is_empty() {
        let old = load_rule_files(&args.baseline).context("in the --baseline rule files")?;
        Mode::Baseline(backtest::targets(&old, settings.default_interval))
    } else {
        Mode::Plain
    };
    if current.is_empty() && !matches!(mode, Mode::Baseline(_)) {
        bail!(
            "no alerting rules in {}: a backtest replays alerting rules only",
            list(&args.files)
        );
    }
    let mut writer = args
        .remote_write
        .as_deref()
        .map(BacktestWriter::new)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let outcome = runtime
        .block_on(modes::execute(
            &client,
            &settings,
            current,
            mode,
            notify_config,
            writer.as_mut(),
        ))
        .map_err(|e| anyhow!(e))?;
    if let (Some(w), Some(url)) = (&writer, &args.remote_write) {
        eprintln!(
            "wrote {} samples of ALERTS and ALERTS_FOR_STATE to {url}",
            w.sent
        );
    }
    let text = match (&outcome, args.output) {
        (_, Output::Json) => json_text(&outcome.to_json(&settings))?,
        (Outcome::Plain(rules), Output::Table) => format!("{header}\n\n{}", report::table(rules)),
        (Outcome::Plain(rules), Output::Episodes) => report::episodes(rules),
        (Outcome::Compare { differences, .. }, Output::Table) => format!(
            "{header}\n\nBaseline → changed:\n{}",
            compare::text(differences)
        ),
        (
            Outcome::Compare {
                baseline, changed, ..
            },
            Output::Episodes,
        ) => format!(
            "Baseline:\n{}\nChanged:\n{}",
            report::episodes(baseline),
            report::episodes(changed)
        ),
        (Outcome::Sweep { reports, .. }, Output::Episodes) => report::episodes(reports),
        (
            Outcome::Sweep {
                rule,
                comparison,
                rows,
                ..
            },
            Output::Table,
        ) => format!(
            "{header}\n\nSweep of {rule}: {}\n\n{}",
            comparison.expr_with_text("THRESHOLD"),
            sweep_table(rows, comparison.constant)
        ),
    };
    print!("{text}");
    Ok(true)
}

/// The sweep's rows as a table; `(rule)` marks the rule's own value.
fn sweep_table(rows: &[SweepRow], in_rule: f64) -> String {
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
    for row in rows {
        let mark = if row.threshold == in_rule {
            " (rule)"
        } else {
            ""
        };
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
    report::columns(&table)
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
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = file
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file name", file.display()))?;
        let object = format!("{rev}:./{}", name.to_string_lossy());
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["show", &object])
            .output()
            .map_err(|e| {
                anyhow!("--baseline-git: cannot run git: {e}; is git installed and on PATH?")
            })?;
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
