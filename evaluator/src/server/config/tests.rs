//! Specifications of `vigil.yaml` validation.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::path::Path;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

const RULES: &str = "groups:\n- name: g\n  rules:\n  - alert: Up\n    expr: up > 0\n";

#[test]
fn an_empty_file_gets_prometheus_defaults_and_console_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "vigil.yaml", "");
    let cfg = load(&file, &no_env).unwrap();
    assert_eq!(cfg.scrape_interval, Duration::from_secs(60));
    assert_eq!(cfg.scrape_timeout, Duration::from_secs(10));
    assert_eq!(cfg.evaluation_interval, Duration::from_secs(60));
    assert_eq!(
        cfg.storage.database_url,
        format!("sqlite://{}/vigil.db", dir.path().display())
    );
    assert_eq!(cfg.storage.database_url_source, DatabaseUrlSource::Default);
    assert_eq!(cfg.storage.retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(cfg.web.listen.to_string(), "127.0.0.1:9320");
    assert_eq!(cfg.web.external_url, "http://127.0.0.1:9320");
    assert!(cfg.console_only);
    assert_eq!(cfg.receivers["console"].len(), 1);
}

#[test]
fn rule_globs_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/a.yaml", RULES);
    write(dir.path(), "rules/b.yaml", RULES);
    write(dir.path(), "rules/ignored.txt", "not yaml");
    let file = write(
        dir.path(),
        "conf/vigil.yaml",
        "rule_files: ['../rules/*.yaml']\n",
    );
    let cfg = load(&file, &no_env).unwrap();
    assert_eq!(cfg.rule_files.len(), 2);
    assert_eq!(cfg.rule_groups.len(), 2);
}

#[test]
fn relative_sqlite_urls_are_next_to_the_config_file_but_database_url_is_taken_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    for (written, file) in [
        ("sqlite://vigil.db", "vigil.db"),
        ("sqlite:history.db", "history.db"),
        ("sqlite://data/vigil.db?mode=rwc", "data/vigil.db?mode=rwc"),
    ] {
        let path = write(
            dir.path(),
            "conf/vigil.yaml",
            &format!("storage: {{database_url: '{written}'}}\n"),
        );
        let cfg = load(&path, &no_env).unwrap();
        assert_eq!(
            cfg.storage.database_url,
            format!("sqlite://{}/{file}", conf.display()),
            "{written}"
        );
        assert_eq!(cfg.storage.database_url_source, DatabaseUrlSource::Config);
    }
    for unchanged in ["sqlite:///var/lib/vigil/vigil.db", "sqlite::memory:"] {
        let path = write(
            dir.path(),
            "conf/vigil.yaml",
            &format!("storage: {{database_url: '{unchanged}'}}\n"),
        );
        assert_eq!(
            load(&path, &no_env).unwrap().storage.database_url,
            unchanged
        );
    }
    // The URL file's content is config too; the environment is not.
    write(dir.path(), "conf/secrets/db", "sqlite://from-file.db\n");
    let path = write(
        dir.path(),
        "conf/vigil.yaml",
        "storage: {database_url_file: secrets/db}\n",
    );
    let cfg = load(&path, &no_env).unwrap();
    assert_eq!(
        cfg.storage.database_url,
        format!("sqlite://{}/from-file.db", conf.display())
    );
    assert_eq!(
        cfg.storage.database_url_source,
        DatabaseUrlSource::File(conf.join("secrets/db"))
    );
    let env = |name: &str| (name == "DATABASE_URL").then(|| "sqlite://typed.db".to_string());
    let cfg = load(&path, &env).unwrap();
    assert_eq!(cfg.storage.database_url, "sqlite://typed.db");
    assert_eq!(
        cfg.storage.database_url_source,
        DatabaseUrlSource::Environment
    );
}

#[test]
fn environment_overrides_database_url_and_supplies_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "vigil.yaml",
        "storage: {database_url: 'sqlite://x.db'}\n",
    );
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("postgres://u@h/db".to_string()),
        "VIGIL_API_TOKEN" => Some("s3cret".to_string()),
        _ => None,
    };
    let cfg = load(&file, &env).unwrap();
    assert_eq!(cfg.storage.database_url, "postgres://u@h/db");
    assert_eq!(cfg.web.token.as_ref().map(|t| t.expose()), Some("s3cret"));
}

#[test]
fn the_database_url_can_come_from_a_file_and_the_environment_still_wins() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secrets/db", "postgres://vigil:pw@db/vigil\n");
    let file = write(
        dir.path(),
        "vigil.yaml",
        "storage: {database_url_file: secrets/db}\n",
    );
    let cfg = load(&file, &no_env).unwrap();
    assert_eq!(cfg.storage.database_url, "postgres://vigil:pw@db/vigil");
    let env = |name: &str| (name == "DATABASE_URL").then(|| "sqlite://env.db".to_string());
    assert_eq!(
        load(&file, &env).unwrap().storage.database_url,
        "sqlite://env.db"
    );

    let both = write(
        dir.path(),
        "both.yaml",
        "storage:\n  database_url: sqlite://x.db\n  database_url_file: secrets/db\n",
    );
    let text = load(&both, &no_env).unwrap_err().to_string();
    assert!(
        text.contains("both.yaml:3:22: storage.database_url_file: set either"),
        "{text}"
    );
    let missing = write(
        dir.path(),
        "missing.yaml",
        "storage: {database_url_file: secrets/nope}\n",
    );
    let text = load(&missing, &no_env).unwrap_err().to_string();
    assert!(
        text.contains("storage.database_url_file: cannot read"),
        "{text}"
    );
    assert!(text.contains("secrets/nope"), "{text}");
}

#[test]
fn the_watch_interval_defaults_to_10s_and_0s_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "vigil.yaml", "");
    assert_eq!(
        load(&file, &no_env).unwrap().watch_interval,
        Some(Duration::from_secs(10))
    );
    let file = write(dir.path(), "off.yaml", "reload: {watch_interval: 0s}\n");
    assert_eq!(load(&file, &no_env).unwrap().watch_interval, None);
    let file = write(dir.path(), "fast.yaml", "reload: {watch_interval: 500ms}\n");
    assert_eq!(
        load(&file, &no_env).unwrap().watch_interval,
        Some(Duration::from_millis(500))
    );
    let file = write(dir.path(), "bad.yaml", "reload: {watch_interval: often}\n");
    let text = load(&file, &no_env).unwrap_err().to_string();
    assert!(
        text.contains("bad.yaml:1:26: reload.watch_interval"),
        "{text}"
    );
}

#[test]
fn every_problem_in_every_file_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad-rules.yaml",
        "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: 'sum('\n",
    );
    write(
        dir.path(),
        "notify.yaml",
        "route: {receiver: nobody}\nreceivers: [{name: r}]\n",
    );
    let file = write(
        dir.path(),
        "vigil.yaml",
        "global:\n  scrape_interval: 5 minutes\nscrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['http://x:1']}]\nrule_files: [bad-rules.yaml, missing.yaml]\nnotify_config_file: notify.yaml\nweb:\n  listen: nowhere\n",
    );
    let errors = load(&file, &no_env).unwrap_err();
    let text: Vec<String> = errors.problems.iter().map(ToString::to_string).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(
        has("vigil.yaml:2:20: global.scrape_interval: invalid duration"),
        "{text:#?}"
    );
    assert!(
        has("scrape_configs[0].static_configs[0].targets[0]"),
        "{text:#?}"
    );
    assert!(
        has("vigil.yaml:9:11: web.listen: \"nowhere\" is not an address"),
        "{text:#?}"
    );
    assert!(has("rule_files[1]: rule file"), "{text:#?}");
    assert!(
        has("bad-rules.yaml:5:11: groups[0].rules[0].expr"),
        "{text:#?}"
    );
    assert!(has("notify.yaml"), "{text:#?}");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "vigil.yaml", "global: {}\nstorge: {}\n");
    let errors = load(&file, &no_env).unwrap_err();
    assert_eq!(errors.problems.len(), 1);
    let p = &errors.problems[0];
    assert_eq!(p.line, Some(2));
    assert!(
        p.message.contains("unknown field `storge`"),
        "{}",
        p.message
    );
}

#[test]
fn a_webhook_receiver_is_built_from_the_notify_config() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "notify.yaml",
        "route: {receiver: hook}\nreceivers:\n- name: hook\n  webhook_configs: [{url: 'http://127.0.0.1:1/x'}]\n",
    );
    let file = write(
        dir.path(),
        "vigil.yaml",
        "notify_config_file: notify.yaml\n",
    );
    let cfg = load(&file, &no_env).unwrap();
    assert!(!cfg.console_only);
    let hook = &cfg.receivers["hook"];
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].integration, "webhook");
}

#[test]
fn reads_are_open_unless_read_requires_token_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let open = load(&write(dir.path(), "open.yaml", ""), &no_env).unwrap();
    assert!(!open.web.read_requires_token);
    write(dir.path(), "token", "s3cret\n");
    let closed = load(
        &write(
            dir.path(),
            "closed.yaml",
            "web: {token_file: token, read_requires_token: true}\n",
        ),
        &no_env,
    )
    .unwrap();
    assert!(closed.web.read_requires_token);
}

#[test]
fn read_requires_token_without_a_token_is_an_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "vigil.yaml",
        "web:\n  read_requires_token: true\n",
    );
    let problems = load(&file, &no_env).unwrap_err().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "web.read_requires_token");
    assert_eq!(problems[0].line, Some(2));
    assert!(
        problems[0].message.contains("VIGIL_API_TOKEN"),
        "{problems:?}"
    );
}

#[test]
fn a_database_url_with_a_bad_port_is_an_error_that_does_not_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://u:s3cret@h:99999/db",
        "postgres://u:s3cret@h:abc/db",
        "postgresql://u:s3cret@h:0/db",
        "postgres://u:s3cret@[::1]:70000/db",
        "postgres://u:s3cret@a:5432,b:x/db",
    ] {
        let file = write(
            dir.path(),
            "vigil.yaml",
            &format!("storage:\n  database_url: '{url}'\n"),
        );
        let problems = load(&file, &no_env).unwrap_err().problems;
        assert_eq!(problems.len(), 1, "{url}: {problems:?}");
        assert_eq!(problems[0].field, "storage.database_url");
        assert_eq!(problems[0].line, Some(2), "{url}");
        assert!(
            problems[0].message.contains("not a TCP port"),
            "{problems:?}"
        );
        assert!(!problems[0].message.contains("s3cret"), "{problems:?}");
    }
    for url in [
        "postgres://u:s3cret@h:5432/db",
        "postgres://u@h/db",
        "postgres://[::1]:5432/db?sslmode=disable",
        "postgres://a:5432,b:5433/db",
        "sqlite://x.db",
    ] {
        let file = write(
            dir.path(),
            "vigil.yaml",
            &format!("storage:\n  database_url: '{url}'\n"),
        );
        assert!(load(&file, &no_env).is_ok(), "{url}");
    }
}

#[test]
fn http_limits_default_and_can_be_set_under_web() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "vigil.yaml", "");
    assert_eq!(
        load(&file, &no_env).unwrap().web.http_limits,
        HttpLimits::default()
    );
    let file = write(
        dir.path(),
        "vigil.yaml",
        "web: {header_read_timeout: 3s, idle_timeout: 2m, max_connections: 64}\n",
    );
    assert_eq!(
        load(&file, &no_env).unwrap().web.http_limits,
        HttpLimits {
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(120),
            max_connections: 64,
        }
    );
    let file = write(
        dir.path(),
        "vigil.yaml",
        "web: {header_read_timeout: 0s, max_connections: 0}\n",
    );
    let fields: Vec<String> = load(&file, &no_env)
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(fields, ["web.header_read_timeout", "web.max_connections"]);
}

#[test]
fn transaction_pooling_is_off_by_default_and_only_for_postgres() {
    use crate::history::db::Pooling;
    let dir = tempfile::tempdir().unwrap();
    let default = load(&write(dir.path(), "default.yaml", ""), &no_env).unwrap();
    assert_eq!(default.storage.pooling, Pooling::Session);
    let pooled = write(
        dir.path(),
        "pooled.yaml",
        "storage:\n  database_url: 'postgres://vigil@pgbouncer:6432/vigil'\n  transaction_pooling: true\n",
    );
    assert_eq!(
        load(&pooled, &no_env).unwrap().storage.pooling,
        Pooling::Transaction
    );
    let off = write(
        dir.path(),
        "off.yaml",
        "storage: {database_url: 'postgres://h/db', transaction_pooling: false}\n",
    );
    assert_eq!(
        load(&off, &no_env).unwrap().storage.pooling,
        Pooling::Session
    );

    // On SQLite, from the file or from DATABASE_URL: an error at the key.
    let sqlite = write(
        dir.path(),
        "sqlite.yaml",
        "storage:\n  transaction_pooling: true\n",
    );
    let problems = load(&sqlite, &no_env).unwrap_err().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "storage.transaction_pooling");
    assert_eq!(problems[0].line, Some(2));
    assert!(
        problems[0].message.contains("SQLite") && problems[0].message.contains("remove it"),
        "{problems:?}"
    );
    let env = |name: &str| (name == "DATABASE_URL").then(|| "sqlite://typed.db".to_string());
    let problems = load(&pooled, &env).unwrap_err().problems;
    assert_eq!(
        problems[0].field, "storage.transaction_pooling",
        "{problems:?}"
    );

    // Not a boolean: the file, line and key.
    let word = write(
        dir.path(),
        "word.yaml",
        "storage:\n  transaction_pooling: sometimes\n",
    );
    let text = load(&word, &no_env).unwrap_err().to_string();
    assert!(
        text.contains("word.yaml:2:")
            && text.contains("transaction_pooling")
            && text.contains("boolean"),
        "{text}"
    );
}

#[test]
fn sharding_is_off_by_default_and_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let default = load(&write(dir.path(), "default.yaml", ""), &no_env).unwrap();
    assert_eq!(default.fleet, None);
    let on = write(
        dir.path(),
        "on.yaml",
        "storage: {database_url: 'postgres://h/db'}\nfleet:\n  sharding: true\n  heartbeat: 2s\n  lease_duration: 10s\n",
    );
    assert_eq!(
        load(&on, &no_env).unwrap().fleet,
        Some(FleetSettings {
            heartbeat: Duration::from_secs(2),
            lease_duration: Duration::from_secs(10),
        })
    );
    let sqlite = write(dir.path(), "sqlite.yaml", "fleet:\n  sharding: true\n");
    let problems = load(&sqlite, &no_env).unwrap_err().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "fleet.sharding");
    assert_eq!(problems[0].line, Some(2));
    assert!(
        problems[0].message.contains("SQLite") && problems[0].message.contains("postgres://"),
        "{problems:?}"
    );
    let slow = write(
        dir.path(),
        "slow.yaml",
        "storage: {database_url: 'postgres://h/db'}\nfleet: {sharding: true, heartbeat: 5s}\n",
    );
    let problems = load(&slow, &no_env).unwrap_err().problems;
    assert_eq!(problems[0].field, "fleet.heartbeat", "{problems:?}");
}
