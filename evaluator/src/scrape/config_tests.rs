//! Unit tests for scrape config parsing, defaults and validation.

use super::*;

fn parse(yaml: &str) -> ScrapeConfig {
    match serde_yaml::from_str(yaml) {
        Ok(c) => c,
        Err(e) => panic!("test yaml does not parse: {e}"),
    }
}

fn defaults() -> ScrapeDefaults {
    ScrapeDefaults {
        scrape_interval: Duration::from_secs(15),
        scrape_timeout: Duration::from_secs(10),
        config_dir: PathBuf::from("/etc/vigil"),
    }
}

fn valid(yaml: &str) -> ValidScrapeConfig {
    match parse(yaml).validate(&defaults(), "scrape_configs[0]") {
        Ok(v) => v,
        Err(e) => panic!("expected a valid config, got {e:?}"),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml).validate(&defaults(), "scrape_configs[0]") {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn minimal_config_takes_global_defaults() {
    let c = valid("job_name: node\nstatic_configs: [{targets: ['127.0.0.1:9100']}]");
    assert_eq!(c.scrape_interval, Duration::from_secs(15));
    assert_eq!(c.scrape_timeout, Duration::from_secs(10));
    assert_eq!(c.metrics_path, "/metrics");
    assert_eq!(c.scheme, Scheme::Http);
    assert_eq!(c.url_for("127.0.0.1:9100"), "http://127.0.0.1:9100/metrics");
    assert_eq!(c.sample_limit, 200_000);
    assert_eq!(c.body_size_limit, 64 << 20);
    assert_eq!(c.label_limit, 128);
    assert_eq!(c.label_name_length_limit, 1024);
    assert_eq!(c.label_value_length_limit, 16 * 1024);
}

#[test]
fn limits_can_be_set_per_job_and_zero_means_no_limit() {
    let c = valid(
        "job_name: x\nsample_limit: 0\nbody_size_limit: 0\nlabel_limit: 0\nlabel_name_length_limit: 0\nlabel_value_length_limit: 0",
    );
    assert_eq!(
        (
            c.sample_limit,
            c.body_size_limit,
            c.label_limit,
            c.label_name_length_limit,
            c.label_value_length_limit
        ),
        (0, 0, 0, 0, 0)
    );
    let c = valid("job_name: x\nlabel_limit: 30\nlabel_name_length_limit: 40\nlabel_value_length_limit: 50\nsample_limit: 60");
    assert_eq!(
        (
            c.label_limit,
            c.label_name_length_limit,
            c.label_value_length_limit,
            c.sample_limit
        ),
        (30, 40, 50, 60)
    );
}

#[test]
fn default_timeout_is_capped_at_the_interval() {
    let c = valid("job_name: fast\nscrape_interval: 5s");
    assert_eq!(c.scrape_timeout, Duration::from_secs(5));
}

#[test]
fn timeout_above_interval_is_an_error() {
    let e = errors("job_name: x\nscrape_interval: 5s\nscrape_timeout: 10s");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("scrape_configs[0].scrape_timeout: 10s is greater"),
        "{e:?}"
    );
}

#[test]
fn target_labels_add_job_and_instance_unless_set() {
    let c = valid("job_name: api\nstatic_configs: [{targets: ['a:1', 'b:2'], labels: {env: prod}}, {targets: ['c:3'], labels: {instance: custom}}]");
    assert_eq!(c.targets.len(), 3);
    let a = c.target_labels(&c.targets[0]);
    assert_eq!(a.get("job"), Some("api"));
    assert_eq!(a.get("instance"), Some("a:1"));
    assert_eq!(a.get("env"), Some("prod"));
    assert_eq!(
        c.target_labels(&c.targets[2]).get("instance"),
        Some("custom")
    );
}

#[test]
fn unknown_fields_are_rejected() {
    let parsed: Result<ScrapeConfig, _> = serde_yaml::from_str("job_name: x\nscrape_intervall: 5s");
    let Err(e) = parsed else {
        panic!("expected unknown field error")
    };
    assert!(e.to_string().contains("scrape_intervall"), "{e}");
}

#[test]
fn legacy_bearer_token_file_and_authorization_are_both_supported() {
    let c = valid("job_name: x\nbearer_token_file: token");
    assert_eq!(
        c.credentials,
        Some(Credentials::File {
            kind: "Bearer".into(),
            path: PathBuf::from("/etc/vigil/token")
        })
    );
    let c = valid("job_name: x\nauthorization: {credentials_file: /run/t}");
    assert_eq!(
        c.credentials,
        Some(Credentials::File {
            kind: "Bearer".into(),
            path: PathBuf::from("/run/t")
        })
    );
    let c = valid("job_name: x\nauthorization: {type: Token, credentials: s3cret}");
    assert_eq!(
        c.credentials,
        Some(Credentials::Inline {
            kind: "Token".into(),
            secret: "s3cret".into()
        })
    );
}

#[test]
fn conflicting_credentials_are_an_error() {
    let e = errors("job_name: x\nbearer_token_file: a\nauthorization: {credentials_file: b}");
    assert!(e[0].contains("at most one of"), "{e:?}");
    let e = errors("job_name: x\nauthorization: {credentials: a, credentials_file: b}");
    assert!(e[0].contains("not both"), "{e:?}");
}

#[test]
fn body_size_limit_accepts_bytes_and_units() {
    assert_eq!(
        valid("job_name: x\nbody_size_limit: 1000").body_size_limit,
        1000
    );
    assert_eq!(
        valid("job_name: x\nbody_size_limit: 10MB").body_size_limit,
        10 << 20
    );
    assert_eq!(
        valid("job_name: x\nbody_size_limit: 512KiB").body_size_limit,
        512 << 10
    );
    let e = errors("job_name: x\nbody_size_limit: ten");
    assert!(
        e[0].starts_with("scrape_configs[0].body_size_limit: invalid size"),
        "{e:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let e = errors(
        "job_name: ''\n\
         scrape_interval: 15x\n\
         scheme: ftp\n\
         metrics_path: metrics\n\
         static_configs: [{targets: ['http://a:1/metrics'], labels: {'bad-name': v}}]\n\
         metric_relabel_configs: [{action: keep, regex: '('}]",
    );
    let paths: Vec<&str> = e.iter().filter_map(|m| m.split(':').next()).collect();
    assert_eq!(
        paths,
        [
            "scrape_configs[0].job_name",
            "scrape_configs[0].static_configs[0].targets[0]",
            "scrape_configs[0].static_configs[0].labels.bad-name",
            "scrape_configs[0].scrape_interval",
            "scrape_configs[0].metrics_path",
            "scrape_configs[0].scheme",
            "scrape_configs[0].metric_relabel_configs[0].regex",
        ]
    );
}

#[test]
fn duplicate_job_names_are_an_error() {
    let configs = vec![parse("job_name: a"), parse("job_name: a")];
    let Err(e) = validate_scrape_configs(&configs, &defaults()) else {
        panic!("expected a duplicate job error")
    };
    assert_eq!(e[0].field, "scrape_configs[1].job_name");
}

#[test]
fn durations_follow_prometheus_notation() {
    let ok = |s: &str| parse_prometheus_duration(s).ok();
    assert_eq!(ok("15s"), Some(Duration::from_secs(15)));
    assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(ok("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(ok("2d"), Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(ok("1w"), Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(ok("1y"), Some(Duration::from_secs(365 * 86_400)));
    assert_eq!(ok("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(ok("1s500ms"), Some(Duration::from_millis(1500)));
    assert_eq!(ok("0"), Some(Duration::ZERO));
    for bad in [
        "",
        "15",
        "s",
        "1.5s",
        "30s1m",
        "1m1m",
        "-1s",
        "1 s",
        "99999999999999999999y",
    ] {
        assert_eq!(ok(bad), None, "{bad:?} should be rejected");
    }
}

#[test]
fn durations_format_back() {
    assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}
