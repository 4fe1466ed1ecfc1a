//! `vigil-evaluator check rules FILE...`: validates rule files and prints the
//! result per file like `promtool check rules`, listing every problem with
//! file, line, column and field, so a CI step can gate rule changes.
//! `vigil-evaluator check config FILE` does the same for `vigil.yaml` and
//! every file it names (rule files, notification config).

use std::io::Write;
use std::path::PathBuf;

use crate::rules::file::load_rule_file;
use crate::server::config;
use crate::server::database_location::describe_database;

/// Checks every file; `Ok(false)` when any file has a problem.
pub fn run(files: &[PathBuf]) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    check_files(files, &mut out)
}

/// Writes the report to `out` (separate from `run` so tests can read it).
pub fn check_files(files: &[PathBuf], out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for file in files {
        writeln!(out, "Checking {}", file.display())?;
        match load_rule_file(file) {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                writeln!(out, "  SUCCESS: {n} rules found")?;
            }
            Err(e) => {
                all_ok = false;
                writeln!(out, "  FAILED:")?;
                for problem in &e.problems {
                    writeln!(out, "{problem}")?;
                }
            }
        }
        writeln!(out)?;
    }
    Ok(all_ok)
}

/// Checks a `vigil.yaml`; `Ok(false)` when it has a problem.
pub fn run_config(file: &std::path::Path) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    check_config(file, &config::process_env, &mut out)
}

/// Writes the `check config` report for `file` to `out`.
pub fn check_config(
    file: &std::path::Path,
    env: config::EnvLookup<'_>,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    writeln!(out, "Checking {}", file.display())?;
    match config::load(file, env) {
        Ok(cfg) => {
            for warning in &cfg.warnings {
                writeln!(out, "{warning}")?;
            }
            let rules: usize = cfg.rule_groups.iter().map(|g| g.rules.len()).sum();
            let notify = if cfg.console_only {
                "console only".to_string()
            } else {
                format!("{} receivers", cfg.notify.receivers.len())
            };
            writeln!(
                out,
                "  SUCCESS: {} scrape configs, {} rule files ({rules} rules), notifications: {notify}",
                cfg.scrape_configs.len(),
                cfg.rule_files.len(),
            )?;
            writeln!(
                out,
                "  history database: {} ({})",
                describe_database(&cfg.storage.database_url),
                cfg.storage.database_url_source
            )?;
            if cfg.storage.pooling == crate::history::db::Pooling::Transaction {
                writeln!(
                    out,
                    "  history connections: for a pooler in transaction mode (storage.transaction_pooling)"
                )?;
            }
            Ok(true)
        }
        Err(errors) => {
            writeln!(out, "  FAILED:")?;
            for problem in &errors.problems {
                writeln!(out, "{problem}")?;
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_prints_where_the_history_database_is() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("vigil.yaml");
        std::fs::write(&file, "storage: {database_url: 'sqlite://vigil.db'}\n")?;
        let mut out = Vec::new();
        assert!(check_config(&file, &|_| None, &mut out)?);
        let text = String::from_utf8(out)?;
        let expected = format!(
            "  history database: SQLite file {} (from storage.database_url; a relative path there is relative to the config file)\n",
            dir.path().join("vigil.db").display()
        );
        assert!(text.contains(&expected), "{text}");

        let env = |name: &str| {
            (name == "DATABASE_URL").then(|| "postgres://vigil:secret@db/vigil".to_string())
        };
        let mut out = Vec::new();
        assert!(check_config(&file, &env, &mut out)?);
        let text = String::from_utf8(out)?;
        assert!(
            text.contains("  history database: postgres://vigil:***@db/vigil (from DATABASE_URL; a relative path there is relative to the working directory)"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        Ok(())
    }

    #[test]
    fn reports_success_with_rule_count_and_failure_with_every_problem() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: sum(up)\n  - alert: X\n    expr: up == 0\n")?;
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "groups:\n- name: g\n  rules:\n  - record: a\n    expr: 'sum('\n  - alert: Y\n    expr: up\n    annotations: {s: '{{ nosuch }}'}\n")?;
        let mut out = Vec::new();
        let ok = check_files(&[good.clone(), bad.clone()], &mut out)?;
        let text = String::from_utf8(out)?;
        assert!(!ok);
        assert!(
            text.contains(&format!(
                "Checking {}\n  SUCCESS: 2 rules found\n",
                good.display()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("Checking {}\n  FAILED:\n", bad.display())),
            "{text}"
        );
        assert!(
            text.contains(":5:11: groups[0].rules[0].expr: could not parse expression"),
            "{text}"
        );
        assert!(
            text.contains(":8:22: groups[0].rules[1].annotations.s: invalid template"),
            "{text}"
        );
        Ok(())
    }
}
