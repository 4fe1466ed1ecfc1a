//! Specification of `exporter.yaml` validation: each bad config yields the
//! documented message, with file, line, column and field path.

use std::path::Path;
use std::time::Duration;

use super::*;

const FILE: &str = "conf/exporter.yaml";

fn problems(yaml: &str) -> Vec<String> {
    match Config::parse(yaml, Path::new(FILE), None) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    }
}

/// One bad config: the YAML, the `file:line:col: field` prefix of the
/// problem, and a phrase its message must contain.
struct Case {
    yaml: &'static str,
    at: &'static str,
    says: &'static str,
}

const PROBE: &str = "probes:\n  - name: shop\n    url: https://shop.example/healthz\n";

#[test]
fn each_bad_config_reports_file_line_column_field_and_expectation() {
    let cases = [
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    intervall: 5s\n",
            at: "conf/exporter.yaml:4:5: probes[0].intervall",
            says: "unknown field `intervall`, expected one of `name`, `url`",
        },
        Case {
            yaml: "listen: 0.0.0.0:9310\nlisten_addr: x\n",
            at: "conf/exporter.yaml:2:1: listen_addr",
            says: "unknown field `listen_addr`",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    interval: 5sec\n",
            at: "conf/exporter.yaml:4:15: probes[0].interval",
            says: "invalid duration \"5sec\": unknown unit \"sec\"",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    timeout: 30\n",
            at: "conf/exporter.yaml:4:14: probes[0].timeout",
            says: "invalid duration \"30\": expected <number><unit> terms",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    interval: 5s\n    timeout: 10s\n",
            at: "conf/exporter.yaml:5:14: probes[0].timeout",
            says: "timeout 10s must not exceed interval 5s; lower the timeout or raise the interval",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    timeout: 1m\n",
            at: "conf/exporter.yaml:4:14: probes[0].timeout",
            says: "timeout 1m must not exceed interval 30s",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: ftp://shop.example/\n",
            at: "conf/exporter.yaml:3:10: probes[0].url",
            says: "has scheme `ftp`, which is not supported; only http:// and https:// URLs can be probed",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: shop.example/healthz\n",
            at: "conf/exporter.yaml:3:10: probes[0].url",
            says: "has value `shop.example/healthz`, which is not a valid URL (relative URL without a base)",
        },
        Case {
            yaml: "probes:\n  - name: shop\n",
            at: "conf/exporter.yaml:2:5: probes[0].url",
            says: "missing; expected the http:// or https:// URL to probe",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    method: FETCH\n",
            at: "conf/exporter.yaml:4:13: probes[0].method",
            says: "\"FETCH\" is not a supported method; expected one of GET, HEAD",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    headers: {\"Bad Header\": x}\n",
            at: "conf/exporter.yaml:4:15: probes[0].headers.Bad Header",
            says: "has invalid header name `Bad Header`; names are letters, digits and `-`",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    headers:\n      Accept: a\n      accept: b\n",
            at: "conf/exporter.yaml:6:7: probes[0].headers.accept",
            says: "header \"accept\" is also given as \"Accept\"; header names are case-insensitive",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    interval: 0s\n",
            at: "conf/exporter.yaml:4:15: probes[0].interval",
            says: "must be greater than 0",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    expect: 'status == (200'\n",
            at: "conf/exporter.yaml:4:24: probes[0].expect",
            says: "probe \"shop\": the expectation `status == (200` is incomplete: `(` at character 11 is never closed; add `)`",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    expect: 'code == 200'\n",
            at: "conf/exporter.yaml:4:13: probes[0].expect",
            says: "the expectation `code == 200` uses unknown variable `code`; available variables: status (int), latency_ms",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    expect: 'status == 200 && header_value(\"x\") == \"y\"'\n",
            at: "conf/exporter.yaml:4:13: probes[0].expect",
            says: "calls unknown function `header_value`",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    expect: 'status + 1'\n",
            at: "conf/exporter.yaml:4:13: probes[0].expect",
            says: "must produce true or false but produced",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    headers: {Accept: \"a\\nb\"}\n",
            at: "conf/exporter.yaml:4:23: probes[0].headers.Accept",
            says: "has an invalid value for `Accept`",
        },
        Case {
            yaml: "probes:\n  - name: ' '\n    url: http://x/\n",
            at: "conf/exporter.yaml:2:11: probes[0].name",
            says: "is empty; give every probe a short unique name",
        },
        Case {
            yaml: "probe_concurrency: 0\n",
            at: "conf/exporter.yaml:1:20: probe_concurrency",
            says: "0 is too small; expected a whole number of at least 1 (default 64)",
        },
        Case {
            yaml: "probes:\n  - {name: shop, url: 'http://a/'}\n  - {name: shop, url: 'http://b/'}\n",
            at: "conf/exporter.yaml:3:12: probes[1].name",
            says: "duplicate probe name \"shop\" (already used by probes[0]); probe names must be unique",
        },
        Case {
            yaml: "probes:\n  - name: shop\n    url: http://x/\n    follow_redirects: sometimes\n",
            at: "conf/exporter.yaml:4:23: probes[0].follow_redirects",
            says: "invalid type: string \"sometimes\", expected a boolean",
        },
        Case {
            yaml: "probes:\n  - 5\n",
            at: "conf/exporter.yaml:2:5: probes[0]",
            says: "invalid type: integer `5`, expected a probe: a mapping with keys such as name, url",
        },
        Case {
            yaml: "listen: localhost\n",
            at: "conf/exporter.yaml:1:9: listen",
            says: "\"localhost\" is not a listen address; expected IP:PORT",
        },
        Case {
            yaml: "business:\n  counters:\n    - name: OrdersCreated_total\n",
            at: "conf/exporter.yaml:3:13: business.counters[0].name",
            says: "\"OrdersCreated_total\" is not a valid metric name; expected lower-case snake_case",
        },
        Case {
            yaml: "business:\n  counters:\n    - name: orders_created\n",
            at: "conf/exporter.yaml:3:13: business.counters[0].name",
            says: "counter \"orders_created\" must end in _total",
        },
        Case {
            yaml: "business:\n  gauges:\n    - name: queue_total\n",
            at: "conf/exporter.yaml:3:13: business.gauges[0].name",
            says: "gauge \"queue_total\" must not end in _total",
        },
        Case {
            yaml: "business:\n  counters:\n    - name: http_requests_total\n",
            at: "conf/exporter.yaml:3:13: business.counters[0].name",
            says: "\"http_requests_total\" collides with a built-in metric",
        },
        Case {
            yaml: "business:\n  counters:\n    - name: orders_total\n  gauges:\n    - name: orders_total\n",
            at: "conf/exporter.yaml:5:13: business.gauges[0].name",
            says: "gauge \"orders_total\" must not end in _total",
        },
        Case {
            yaml: "business:\n  counters:\n    - name: orders_total\n    - name: orders_total\n",
            at: "conf/exporter.yaml:4:13: business.counters[1].name",
            says: "duplicate metric name \"orders_total\" (already declared by business.counters[0])",
        },
        Case {
            yaml: "business:\n  counters:\n    - {name: orders_total, labels: [channel, 1st]}\n",
            at: "conf/exporter.yaml:3:46: business.counters[0].labels[1]",
            says: "\"1st\" is not a valid label name; expected [a-zA-Z_][a-zA-Z0-9_]*",
        },
        Case {
            yaml: "business:\n  counters:\n    - {name: orders_total, labels: [instance]}\n",
            at: "conf/exporter.yaml:3:37: business.counters[0].labels[0]",
            says: "label name \"instance\" is reserved",
        },
        Case {
            yaml: "business:\n  counters:\n    - {name: orders_total, labels: [__meta]}\n",
            at: "conf/exporter.yaml:3:37: business.counters[0].labels[0]",
            says: "label name \"__meta\" is reserved: names starting with __",
        },
        Case {
            yaml: "business:\n  counters:\n    - {name: orders_total, labels: [a, a]}\n",
            at: "conf/exporter.yaml:3:40: business.counters[0].labels[1]",
            says: "duplicate label name \"a\"",
        },
        Case {
            yaml: "business:\n  max_label_sets: 0\n",
            at: "conf/exporter.yaml:2:19: business.max_label_sets",
            says: "0 is too small; expected a whole number of at least 1",
        },
        Case {
            yaml: "business:\n  token_file: no-such-token\n",
            at: "conf/exporter.yaml:2:15: business.token_file",
            says: "cannot read token file conf/no-such-token",
        },
        Case {
            yaml: "probes:\n  - name: shop\n   url: x\n",
            at: "conf/exporter.yaml:3:4",
            says: "not valid YAML: did not find expected '-' indicator",
        },
    ];
    for case in cases {
        let found = problems(case.yaml);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(&format!("{}: ", case.at)) && p.contains(case.says)),
            "config:\n{}\nexpected a problem at `{}` saying `{}`, got {found:#?}",
            case.yaml,
            case.at,
            case.says
        );
    }
}

/// One malformed `expect`, written single-quoted at line 4, column 13: the
/// 0-based character of the expression the problem is reported at, and a
/// phrase the message must contain.
const MALFORMED_EXPECTATIONS: [(&str, usize, &str); 30] = [
    ("status ==", 9, "`==` at character 8 is missing its right-hand operand: the expression ends there; write the value to compare or combine with, e.g. `status == 200`"),
    ("status ===", 9, "`==` at character 8 is followed by `=`: there is no `===` operator; write `==` to compare"),
    ("status !== 200", 9, "there is no `!==` operator; write `!=` to compare"),
    ("status == 200 &&", 16, "`&&` at character 15 is missing its right-hand operand: the expression ends there; write the condition it joins"),
    ("status == 200 ||", 16, "`||` at character 15 is missing its right-hand operand"),
    ("status == == 200", 10, "`==` at character 8 is missing its right-hand operand: `==` at character 11 follows it directly"),
    ("status == 200 && && latency_ms < 5", 17, "`&&` at character 15 is missing its right-hand operand: `&&` at character 18 follows it directly"),
    ("status >= 200 && < 400", 17, "`&&` at character 15 is missing its right-hand operand: `<` at character 18 follows it directly"),
    ("status <", 8, "`<` at character 8 is missing its right-hand operand"),
    ("== 200", 0, "`==` at character 1 has no left-hand operand: the expression starts with it"),
    ("&& status == 200", 0, "`&&` at character 1 has no left-hand operand"),
    ("(== 200)", 1, "`==` at character 2 has no left-hand operand: it follows `(` at character 1"),
    ("status == (200", 10, "`(` at character 11 is never closed; add `)` where it ends"),
    ("status == 200)", 13, "`)` at character 14 has no matching `(`"),
    ("(status == )", 11, "`==` at character 9 is missing its right-hand operand before `)` at character 12"),
    ("len(", 4, "the expression ends after `(` at character 4"),
    ("200 status", 4, "an operator is missing between `200` at character 1 and `status` at character 5"),
    ("status == 200 latency_ms < 5", 14, "an operator is missing between `200` at character 11 and `latency_ms` at character 15"),
    ("(status == 200) (latency_ms < 5)", 16, "an operator is missing between `)` at character 15 and `(` at character 17"),
    ("status & 200", 7, "`&` at character 8 is not an operator; write `&&`"),
    ("status == 200 | status == 204", 14, "`|` at character 15 is not an operator; write `||`"),
    ("!", 1, "`!` at character 1 is missing its right-hand operand: the expression ends there; write what it negates"),
    ("status !", 7, "`!` at character 8 follows a complete value"),
    ("contains_str(body, )", 19, "`,` at character 18 is missing its right-hand operand before `)` at character 20; write the value after the comma"),
    ("contains_str(body,, \"x\")", 18, "`,` at character 18 is missing its right-hand operand: `,` at character 19 follows it directly"),
    ("body == \"ok", 8, "the string starting with `\"` at character 9 is never closed"),
    ("body == \"a\\n\"", 10, "`\\n` at character 11 is not an escape an expectation understands"),
    ("status == 200 /* note", 14, "the comment `/*` at character 15 is never closed"),
    ("status == 200;", 14, "`;` at character 14 is missing its right-hand operand: the expression ends there; remove the trailing `;`"),
    ("status == -", 11, "`-` at character 11 is missing its right-hand operand: the expression ends there; write the number after it"),
];

#[test]
fn malformed_expectations_are_refused_with_column_probe_and_what_is_missing() {
    for (expression, at, says) in MALFORMED_EXPECTATIONS {
        let yaml =
            format!("probes:\n  - name: shop\n    url: http://x/\n    expect: '{expression}'\n");
        let found = problems(&yaml);
        let column = 13 + 1 + at;
        let prefix = format!(
            "conf/exporter.yaml:4:{column}: probes[0].expect: probe \"shop\": the expectation `{expression}` is incomplete: "
        );
        assert_eq!(found.len(), 1, "{expression}: {found:?}");
        assert!(
            found[0].starts_with(&prefix),
            "{expression}: want prefix {prefix}\n got {}",
            found[0]
        );
        assert!(
            found[0].contains(says),
            "{expression}: want {says:?}\n got {}",
            found[0]
        );
    }
}

#[test]
fn malformed_expectation_in_a_plain_or_escaped_scalar_is_still_located() {
    // Plain scalar: the column is exact.
    let found = problems("probes:\n  - name: api\n    url: http://x/\n    expect: status ==\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("conf/exporter.yaml:4:22: probes[0].expect: probe \"api\": the expectation `status ==` is incomplete"),
        "{found:?}"
    );
    // Escapes in a double-quoted scalar: the value's start, and the message
    // still says which character.
    let found = problems(
        "probes:\n  - name: api\n    url: http://x/\n    expect: \"body == \\\"ok\\\" &&\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("conf/exporter.yaml:4:13: probes[0].expect: probe \"api\": the expectation `body == \"ok\" &&` is incomplete: `&&` at character 14"),
        "{found:?}"
    );
}

#[test]
fn well_formed_expectations_still_pass_the_config_check() {
    for expression in [
        "status == 200",
        "status >= 200 && status < 400",
        "(status == 200 || status == 204) && latency_ms < 800",
        "!contains_str(body, \"error\")",
        "!(status == 500) && -latency_ms < 0",
        "len(body) > 0 && str::regex_matches(body, \"^ok\")",
        "header(\"Content-Type\") == \"application/json\"",
        "contains(headers, \"x-env: prod\")",
        "if(status == 200, true, false)",
        "cert_days_left > 14 && latency_ms < 1e3",
        "math::is_finite(cert_days_left) || status == 0x12C",
        "status == 200 // the health check",
    ] {
        let yaml =
            format!("probes:\n  - name: shop\n    url: http://x/\n    expect: '{expression}'\n");
        if let Err(error) = Config::parse(&yaml, Path::new(FILE), None) {
            panic!("{expression}: {error}");
        }
    }
}

#[test]
fn a_config_with_several_problems_reports_all_of_them() {
    let yaml = "listen: nowhere\nprobes:\n  - {name: a, url: 'ftp://a/', timeout: 1h}\n  - {name: b, url: 'http://b/', bogus: 1}\n  - {name: a, url: 'http://c/', interval: 5x}\nbusiness:\n  counters:\n    - {name: Bad, labels: [job]}\n";
    let found = problems(yaml);
    let fields: Vec<&str> = found
        .iter()
        .map(|p| p.split(": ").nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "listen",
            "probes[0].url",
            "probes[0].timeout",
            "probes[1].bogus",
            "probes[2].name",
            "probes[2].interval",
            "business.counters[0].name",
            "business.counters[0].labels[0]",
        ],
        "{found:#?}"
    );
}

#[test]
fn unknown_keys_do_not_hide_other_problems_of_the_same_section() {
    let yaml = "lisen: 0.0.0.0:1\nprobes:\n  - name: a\n    url: ftp://a/\n    intervall: 5s\n    retries: 3\nbusiness:\n  tokenfile: x\n  max_label_sets: -1\n";
    let found = problems(yaml);
    let at: Vec<String> = found
        .iter()
        .map(|p| p.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(
        at,
        [
            "conf/exporter.yaml:1:1: lisen",
            "conf/exporter.yaml:4:10: probes[0].url",
            "conf/exporter.yaml:5:5: probes[0].intervall",
            "conf/exporter.yaml:6:5: probes[0].retries",
            "conf/exporter.yaml:8:3: business.tokenfile",
            "conf/exporter.yaml:9:19: business.max_label_sets",
        ],
        "{found:#?}"
    );
}

#[test]
fn error_display_lists_every_problem_under_a_count() {
    let error = Config::parse("demo: maybe\nlisten: x\n", Path::new(FILE), None).err();
    let text = error.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        text,
        "invalid configuration (2 problems):\n  \
         conf/exporter.yaml:1:7: demo: invalid type: string \"maybe\", expected a boolean\n  \
         conf/exporter.yaml:2:9: listen: \"x\" is not a listen address; expected IP:PORT such as 0.0.0.0:9310 or 127.0.0.1:9310"
    );
}

#[test]
fn empty_file_gives_the_defaults() {
    for yaml in ["", "# nothing here\n", "probes:\nbusiness:\n"] {
        let config = Config::parse(yaml, Path::new(FILE), None);
        assert_eq!(config.ok(), Some(Config::default()), "{yaml:?}");
    }
}

#[test]
fn minimal_probe_gets_every_default() {
    let config = Config::parse(PROBE, Path::new(FILE), None).ok();
    let probe = config.and_then(|c| c.probes.into_iter().next());
    assert_eq!(
        probe,
        Some(ProbeConfig {
            name: "shop".into(),
            url: "https://shop.example/healthz".into(),
            method: http::Method::GET,
            headers: Default::default(),
            body: String::new(),
            interval: defaults::PROBE_INTERVAL,
            timeout: defaults::PROBE_TIMEOUT,
            follow_redirects: true,
            tls_verify: true,
            expect: crate::probe::Expectation::default(),
        })
    );
}

#[test]
fn full_config_parses_every_field() -> Result<(), String> {
    let dir = tempfile::tempdir().ok();
    let dir = dir
        .as_ref()
        .map(|d| d.path())
        .unwrap_or(Path::new("/nonexistent"));
    std::fs::create_dir_all(dir.join("secrets")).ok();
    std::fs::write(dir.join("secrets/token"), "s3cret\n").ok();
    let yaml = r#"
listen: 127.0.0.1:9999
demo: true
probes:
  - name: shop
    url: https://shop.example/healthz
    method: post
    interval: 1m30s
    timeout: 1500ms
    headers: {Accept: application/json}
    body: '{"ping": true}'
    follow_redirects: false
    tls_verify: false
    expect: 'status == 200 && latency_ms < 800'
probe_concurrency: 8
business:
  token_file: secrets/token
  max_label_sets: 50
  counters:
    - {name: orders_created_total, help: Orders created., labels: [channel]}
  gauges:
    - {name: queue_depth, labels: [queue, region]}
"#;
    let config = Config::parse(yaml, &dir.join("exporter.yaml"), Some("ignored-env-token"));
    let expected = Config {
        listen: "127.0.0.1:9999"
            .parse()
            .unwrap_or_else(|_| defaults::listen()),
        http: HttpLimits::default(),
        demo: true,
        probes: vec![ProbeConfig {
            name: "shop".into(),
            url: "https://shop.example/healthz".into(),
            method: http::Method::POST,
            headers: [("Accept".to_owned(), "application/json".to_owned())].into(),
            body: r#"{"ping": true}"#.into(),
            interval: Duration::from_secs(90),
            timeout: Duration::from_millis(1500),
            follow_redirects: false,
            tls_verify: false,
            expect: crate::probe::Expectation::compile("status == 200 && latency_ms < 800")
                .map_err(|e| e.to_string())?,
        }],
        probe_concurrency: 8,
        business: BusinessConfig {
            token: IngestToken::new("s3cret"),
            max_label_sets: 50,
            counters: vec![MetricConfig {
                name: "orders_created_total".into(),
                help: "Orders created.".into(),
                labels: vec!["channel".into()],
            }],
            gauges: vec![MetricConfig {
                name: "queue_depth".into(),
                help: "Business gauge queue_depth, fed through POST /api/v1/events.".into(),
                labels: vec!["queue".into(), "region".into()],
            }],
        },
    };
    assert_eq!(config.map_err(|e| e.to_string()), Ok(expected));
    Ok(())
}

#[test]
fn ingest_token_falls_back_to_the_environment_value() {
    let with_env = Config::parse("demo: true\n", Path::new(FILE), Some("from-env\n")).ok();
    assert_eq!(
        with_env.and_then(|c| c.business.token),
        IngestToken::new("from-env")
    );
    let blank_env = Config::parse("demo: true\n", Path::new(FILE), Some("  ")).ok();
    assert_eq!(blank_env.map(|c| c.business.token), Some(None));
}

#[test]
fn token_is_redacted_in_debug_output() {
    let token = IngestToken::new("hunter2");
    assert_eq!(format!("{token:?}"), "Some(IngestToken(<redacted>))");
}

#[test]
fn shipped_demo_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/exporter-demo.yaml");
    let config = Config::load(&path).map_err(|e| e.to_string());
    let names = config.map(|c| (c.demo, c.probes.len(), c.business.counters.len()));
    assert_eq!(names, Ok((true, 2, 1)));
}

#[test]
fn shipped_reference_example_is_valid_and_states_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/exporter-full.yaml");
    let config = Config::load(&path).map_err(|e| e.to_string());
    let summary = config.map(|c| {
        let probe = &c.probes[0];
        (
            c.listen,
            probe.interval,
            probe.timeout,
            c.probe_concurrency,
            c.business.max_label_sets,
            c.http,
        )
    });
    assert_eq!(
        summary,
        Ok((
            defaults::listen(),
            defaults::PROBE_INTERVAL,
            defaults::PROBE_TIMEOUT,
            defaults::PROBE_CONCURRENCY,
            defaults::MAX_LABEL_SETS,
            HttpLimits::default()
        ))
    );
}

#[test]
fn probe_config_converts_to_a_probe_target_field_for_field() -> Result<(), String> {
    let yaml = "probes:\n  - name: shop\n    url: https://shop.example/healthz\n    method: post\n    headers: {Accept: application/json, X-Trace: '1'}\n    body: ping\n    interval: 1m\n    timeout: 2s\n    follow_redirects: false\n    tls_verify: false\n    expect: 'status == 204'\n";
    let config = Config::parse(yaml, Path::new(FILE), None).map_err(|e| e.to_string())?;
    let targets = config.probe_targets().map_err(|e| format!("{e:?}"))?;
    let [target] = targets.as_slice() else {
        return Err(format!("expected one target, got {targets:?}"));
    };
    assert_eq!(target.name, "shop");
    assert_eq!(target.url.as_str(), "https://shop.example/healthz");
    assert_eq!(target.method, http::Method::POST);
    assert_eq!(
        target.headers,
        [
            ("Accept".to_owned(), "application/json".to_owned()),
            ("X-Trace".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(target.body.as_deref(), Some("ping"));
    assert_eq!(
        (target.interval, target.timeout),
        (Duration::from_secs(60), Duration::from_secs(2))
    );
    assert!(!target.follow_redirects && !target.tls_verify);
    assert_eq!(target.expect.source(), "status == 204");
    assert!(!target.expect.is_default());
    Ok(())
}

#[test]
fn probe_without_expect_or_body_gets_the_prober_defaults() -> Result<(), String> {
    let config = Config::parse(PROBE, Path::new(FILE), None).map_err(|e| e.to_string())?;
    let targets = config.probe_targets().map_err(|e| format!("{e:?}"))?;
    let target = targets.first().ok_or("no target")?;
    assert!(target.expect.is_default(), "{:?}", target.expect);
    assert_eq!(target.body, None);
    assert_eq!(config.probe_concurrency, defaults::PROBE_CONCURRENCY);
    Ok(())
}

#[test]
fn http_limits_default_and_can_be_set_and_zero_is_refused() {
    let empty = Config::parse("", Path::new(FILE), None).map(|c| c.http);
    assert_eq!(empty.ok(), Some(HttpLimits::default()));
    let set = Config::parse(
        "http: {header_read_timeout: 3s, idle_timeout: 2m, max_connections: 64}\n",
        Path::new(FILE),
        None,
    )
    .map(|c| c.http);
    assert_eq!(
        set.ok(),
        Some(HttpLimits {
            header_read_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(120),
            max_connections: 64,
        })
    );
    let bad = problems("http: {idle_timeout: 0s, max_connections: 0}\n");
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("http.idle_timeout") && bad[0].contains("greater than 0"),
        "{bad:?}"
    );
    assert!(
        bad[1].contains("http.max_connections") && bad[1].contains("at least 1"),
        "{bad:?}"
    );
    let unknown = problems("http: {read_timeout: 3s}\n");
    assert!(unknown[0].contains("read_timeout"), "{unknown:?}");
}
