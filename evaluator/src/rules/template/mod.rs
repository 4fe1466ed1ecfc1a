//! The Go `text/template` subset that rule authors use in alert labels and
//! annotations, with Prometheus' data and functions, so that rule files move
//! between Prometheus and Vigil unchanged.
//!
//! Like Prometheus, every template sees `$labels`, `$externalLabels`,
//! `$externalURL` and `$value` (Prometheus prepends
//! `{{$labels := .Labels}}...` to the text; here they are predeclared, so
//! error positions point into the author's own text).

pub mod funcs;
pub mod value;

pub use crate::template::{gofmt, humanize, TemplateError};
pub use value::{TemplateData, TemplateSample, Value};

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use crate::template::ast::Node;
use crate::template::Location;

/// Length of `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}`
/// `{{$externalURL := .ExternalURL}}{{$value := .Value}}`, which Prometheus
/// prepends to every alert template; its error columns include it.
const PROMETHEUS_DEFS_LEN: usize = 112;

const PREDECLARED: [&str; 4] = ["$labels", "$externalLabels", "$externalURL", "$value"];

/// A parsed template, ready to expand many times.
///
/// The parse tree depends on the text only, so templates with the same text
/// share one (rules often repeat their annotations and labels word for
/// word; for a thousand rules the trees were about 1.6 MiB, BENCHMARKS.md
/// "Fleet"). `name` only appears in error messages.
#[derive(Debug, Clone)]
pub struct Template {
    name: Arc<str>,
    parsed: Arc<Parsed>,
}

#[derive(Debug)]
struct Parsed {
    src: Arc<str>,
    nodes: Vec<Node>,
}

/// The parse trees alive, by text. Entries whose trees were all dropped are
/// swept when the table has doubled since the last sweep.
struct Interned {
    by_src: HashMap<Arc<str>, Weak<Parsed>>,
    sweep_at: usize,
}

static INTERNED: LazyLock<Mutex<Interned>> = LazyLock::new(|| {
    Mutex::new(Interned {
        by_src: HashMap::new(),
        sweep_at: 64,
    })
});

/// Runs PromQL for the `query` template function.
pub type TemplateQuery<'a> = &'a dyn Fn(&str) -> Result<Vec<TemplateSample>, String>;

impl Template {
    /// Parses `src`; `name` appears in error messages (Prometheus uses
    /// `__alert_<AlertName>`).
    pub fn parse(name: &str, src: &str) -> Result<Template, TemplateError> {
        Template::parse_named(Arc::from(name), src)
    }

    /// [`Template::parse`] with a name shared by several templates (those
    /// of one rule).
    pub fn parse_named(name: Arc<str>, src: &str) -> Result<Template, TemplateError> {
        // A poisoned lock only means another parse panicked: the table is
        // still sound (entries are inserted whole).
        let lock = || INTERNED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parsed) = lock().by_src.get(src).and_then(Weak::upgrade) {
            return Ok(Template { name, parsed });
        }
        let nodes =
            crate::template::parse(&name, src, &PREDECLARED, &funcs::is_function, false)?.nodes;
        let src: Arc<str> = Arc::from(src);
        let mut table = lock();
        // Another thread may have parsed the same text meanwhile: keep its.
        if let Some(parsed) = table.by_src.get(&src).and_then(Weak::upgrade) {
            return Ok(Template { name, parsed });
        }
        let parsed = Arc::new(Parsed {
            src: src.clone(),
            nodes,
        });
        table.by_src.insert(src, Arc::downgrade(&parsed));
        if table.by_src.len() >= table.sweep_at {
            table.by_src.retain(|_, p| p.strong_count() > 0);
            table.sweep_at = (table.by_src.len() * 2).max(64);
        }
        Ok(Template { name, parsed })
    }

    /// Expands the template for one alert. `query` serves the `query`
    /// function (at the rule's evaluation time).
    pub fn execute(
        &self,
        data: &TemplateData,
        query: TemplateQuery<'_>,
    ) -> Result<String, TemplateError> {
        let env = funcs::FuncEnv {
            query,
            external_url: &data.external_url,
        };
        let data_value = Value::Object(Rc::new(data.clone()));
        let vars = vec![
            ("$".to_string(), data_value.clone()),
            (
                "$labels".to_string(),
                Value::Map(Rc::new(data.labels.clone())),
            ),
            (
                "$externalLabels".to_string(),
                Value::Map(Rc::new(data.external_labels.clone())),
            ),
            (
                "$externalURL".to_string(),
                Value::Str(data.external_url.clone()),
            ),
            ("$value".to_string(), Value::Float(data.value)),
        ];
        let loc = Location {
            file: self.name.clone(),
            name: self.name.to_string(),
            src: self.parsed.src.clone(),
            first_line_offset: PROMETHEUS_DEFS_LEN,
        };
        let no_named = HashMap::new();
        crate::template::execute(
            loc,
            &self.parsed.nodes,
            &data_value,
            vars,
            &env,
            &no_named,
            false,
        )
        .map_err(|e| match e {
            // Prometheus' wording for alert templates.
            crate::template::TemplateError::Execute {
                name,
                line,
                col,
                at,
                msg,
                ..
            } => TemplateError::Exec {
                name,
                line,
                col,
                at,
                msg,
            },
            other => other,
        })
    }
}

/// Parses and expands in one step.
pub fn expand(
    name: &str,
    src: &str,
    data: &TemplateData,
    query: TemplateQuery<'_>,
) -> Result<String, TemplateError> {
    Template::parse(name, src)?.execute(data, query)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn data(value: f64) -> TemplateData {
        TemplateData {
            labels: BTreeMap::from([
                ("instance".to_string(), "web-1:9100".to_string()),
                ("route".to_string(), "/api/orders".to_string()),
                ("__name__".to_string(), "up".to_string()),
            ]),
            external_labels: BTreeMap::from([("cluster".to_string(), "eu-1".to_string())]),
            external_url: "http://vigil.example/prefix".to_string(),
            value,
        }
    }

    fn no_query(_: &str) -> Result<Vec<TemplateSample>, String> {
        Err("no query engine in this test".into())
    }

    /// A query engine answering every query with one sample of value 1
    /// per instance name.
    fn instances(
        names: &'static [&'static str],
    ) -> impl Fn(&str) -> Result<Vec<TemplateSample>, String> {
        move |_| {
            Ok(names
                .iter()
                .map(|i| TemplateSample {
                    labels: BTreeMap::from([("instance".to_string(), i.to_string())]),
                    value: 1.0,
                })
                .collect())
        }
    }

    /// `src` expanded at value 0 with `query` as the query engine.
    fn run_with(src: &str, query: TemplateQuery<'_>) -> Result<String, TemplateError> {
        expand("t", src, &data(0.0), query)
    }

    /// Each `(template, expansion)`: the template expands to it (at value
    /// 0.1234, without a query engine).
    fn expands(cases: &[(&str, &str)]) {
        for (src, want) in cases {
            assert_eq!(run(src), *want, "{src}");
        }
    }

    fn run(src: &str) -> String {
        match expand("t", src, &data(0.1234), &no_query) {
            Ok(s) => s,
            Err(e) => format!("ERROR: {e}"),
        }
    }

    #[test]
    fn prometheus_variables_and_fields_expand() {
        expands(&[
            (
                "{{ $labels.instance }} in {{ $externalLabels.cluster }}",
                "web-1:9100 in eu-1",
            ),
            ("{{ .Labels.route }}={{ .Value }}", "/api/orders=0.1234"),
            ("{{ $value }}", "0.1234"),
            ("{{ index $labels \"route\" }}", "/api/orders"),
            (
                "{{ .ExternalURL }}|{{ $externalURL }}",
                "http://vigil.example/prefix|http://vigil.example/prefix",
            ),
        ]);
    }

    #[test]
    fn missing_label_is_the_empty_string() {
        expands(&[
            ("[{{ $labels.nope }}]", "[]"),
            ("[{{ index $labels \"nope\" }}]", "[]"),
        ]);
    }

    #[test]
    fn pipelines_pass_value_as_last_argument() {
        expands(&[
            ("{{ $value | humanizePercentage }}", "12.34%"),
            ("{{ $labels.route | toUpper }}", "/API/ORDERS"),
            ("{{ printf \"%.2f\" $value }}", "0.12"),
            ("{{ $value | printf \"%.1f\" }}", "0.1"),
            ("{{ \"abc\" | len }}", "3"),
        ]);
    }

    #[test]
    fn conditionals_choose_branches() {
        let src = "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}";
        expands(&[
            (src, "mid"),
            (
                "{{ if and (eq $labels.instance \"web-1:9100\") (not false) }}yes{{ end }}",
                "yes",
            ),
            ("{{ if or false \"\" }}yes{{ else }}no{{ end }}", "no"),
            (
                "{{ with $labels.route }}route {{ . }}{{ end }}",
                "route /api/orders",
            ),
            ("{{ with $labels.nope }}x{{ else }}none{{ end }}", "none"),
        ]);
    }

    #[test]
    fn range_over_labels_is_sorted_by_name() {
        expands(&[
            (
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                "__name__=up;instance=web-1:9100;route=/api/orders;",
            ),
            ("{{ range $externalLabels }}{{ . }}{{ end }}", "eu-1"),
        ]);
    }

    #[test]
    fn variables_can_be_declared_and_assigned() {
        assert_eq!(
            run("{{ $x := \"a\" }}{{ if true }}{{ $x = \"b\" }}{{ end }}{{ $x }}"),
            "b"
        );
    }

    #[test]
    fn whitespace_trimming_and_comments() {
        expands(&[
            ("a  {{- /* note */ -}}  b", "ab"),
            ("a {{- \"x\" }} b {{ \"y\" -}}   c", "ax b yc"),
            ("{{/* only a comment */}}z", "z"),
        ]);
    }

    #[test]
    fn regex_functions_work() {
        expands(&[
            (
                "{{ reReplaceAll \"(.*):(.*)\" \"$1\" $labels.instance }}",
                "web-1",
            ),
            ("{{ if match \"^/api\" $labels.route }}api{{ end }}", "api"),
            ("{{ title \"payment service\" }}", "Payment Service"),
        ]);
    }

    #[test]
    fn query_first_value_and_label_pipeline() {
        let query = |q: &str| -> Result<Vec<TemplateSample>, String> {
            assert_eq!(q, "sum(up)");
            Ok(vec![TemplateSample {
                labels: BTreeMap::from([("job".to_string(), "api".to_string())]),
                value: 1234567.0,
            }])
        };
        let out = run_with(
            "{{ query \"sum(up)\" | first | value | humanize }} {{ with query \"sum(up)\" }}{{ . | first | label \"job\" }}{{ end }}",
            &query,
        );
        assert_eq!(out.as_deref(), Ok("1.235M api"));
    }

    #[test]
    fn range_over_query_result_sets_dot_to_each_sample() {
        let out = run_with(
            "{{ range query \"up\" }}{{ .Labels.instance }}:{{ .Value }} {{ end }}",
            &instances(&["a", "b"]),
        );
        assert_eq!(out.as_deref(), Ok("a:1 b:1 "));
    }

    #[test]
    fn range_else_break_and_continue() {
        assert_eq!(
            run("{{ range $externalLabels }}x{{ else }}empty{{ end }}"),
            "x"
        );
        let out = run_with(
            "{{ range query \"up\" }}x{{ else }}no data{{ end }}",
            &instances(&[]),
        );
        assert_eq!(out.as_deref(), Ok("no data"));
        assert_eq!(run("{{ range $i := 5 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}"), "02");
    }

    #[test]
    fn and_or_short_circuit_like_go() {
        expands(&[
            ("{{ and false (index $value 1) }}", "false"),
            ("{{ or \"first\" (index $value 1) }}", "first"),
            ("{{ and 1 \"x\" }}", "x"),
        ]);
    }

    #[test]
    fn numbers_and_dashes_lex_like_go() {
        expands(&[
            ("{{-3}}", "-3"),
            ("a {{- 3}}", "a3"),
            ("{{ 1.5 }} {{ 0x1F }} {{ 'a' }} {{ 1e3 }}", "1.5 31 97 1000"),
        ]);
    }

    #[test]
    fn more_builtins() {
        expands(&[
            ("{{ len $labels }}", "3"),
            ("{{ print 1 2 \"a\" \"b\" 3 }}", "1 2ab3"),
            ("{{ html \"<b>&\" }}", "&lt;b&gt;&amp;"),
            ("{{ urlquery \"a b&c\" }}", "a+b%26c"),
            ("{{ $labels.instance | stripPort }}", "web-1"),
            ("{{ parseDuration \"1m30s\" }}", "90"),
            (
                "{{ 1435065584.128 | humanizeTimestamp }}",
                "2015-06-23 13:19:44.128 +0000 UTC",
            ),
            ("{{ \"2048\" | humanize1024 }}", "2ki"),
            ("{{ $.Labels.route }}", "/api/orders"),
            (
                "{{ graphLink \"up == 0\" }}",
                "/prefix/graph?g0.expr=up+%3D%3D+0&g0.tab=0",
            ),
            (
                "{{ printf \"%5.1f|%-6s|%x\" 3.14159 \"ab\" 255 }}",
                "  3.1|ab    |ff",
            ),
        ]);
    }

    #[test]
    fn sort_by_label_orders_query_results() {
        let out = run_with(
            "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}{{ end }} {{ len (query \"up\") }}",
            &instances(&["b", "c", "a"]),
        );
        assert_eq!(out.as_deref(), Ok("abc 3"));
    }

    /// Thousands of random fragment soups: parsing and expanding must
    /// always return (text or error), never panic.
    #[test]
    fn random_templates_never_panic() {
        const FRAGMENTS: &[&str] = &[
            "{{",
            "}}",
            "{{-",
            "-}}",
            " ",
            "$labels",
            "$value",
            ".Labels",
            ".Value",
            ".",
            "|",
            "(",
            ")",
            "\"s\"",
            "`raw`",
            "'c'",
            "1",
            "-2.5e3",
            "0x1F",
            "if",
            "else",
            "end",
            "range",
            "with",
            "break",
            "continue",
            ":=",
            "=",
            "$x",
            ",",
            "humanize",
            "printf",
            "\"%d %s %.2f %q %!\"",
            "index",
            "len",
            "eq",
            "lt",
            "and",
            "or",
            "not",
            "query",
            "first",
            "value",
            "label",
            "reReplaceAll",
            "\"(\"",
            "match",
            "title",
            "é",
            "日本",
            "/*",
            "*/",
            "\\",
            "\n",
            "nil",
            "true",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let query = |_: &str| -> Result<Vec<TemplateSample>, String> {
            Ok(vec![TemplateSample {
                labels: BTreeMap::new(),
                value: 1.0,
            }])
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize + 1;
            let src: String = (0..len)
                .map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize])
                .collect();
            if let Ok(t) = Template::parse("fuzz", &src) {
                let _ = t.execute(&data(f64::NAN), &query);
            }
        }
    }

    #[test]
    fn templates_with_the_same_text_share_one_tree_and_keep_their_names() {
        let text =
            "shared {{ index $labels \"zz_interning_test\" }} {{ $value | printf \"%.7f\" }}";
        let a = Template::parse("__alert_A", text).expect("parses");
        let b = Template::parse("__alert_B", text).expect("parses");
        assert!(Arc::ptr_eq(&a.parsed, &b.parsed));
        let other = Template::parse("__alert_A", "another {{ $value }} text").expect("parses");
        assert!(!Arc::ptr_eq(&a.parsed, &other.parsed));
        // Execution errors still name their own template.
        let bad = "{{ index $value 1 }} zz_interning_test";
        let (a, b) = (
            Template::parse("__alert_A", bad).expect("parses"),
            Template::parse("__alert_B", bad).expect("parses"),
        );
        let ea = a
            .execute(&data(1.0), &no_query)
            .expect_err("fails")
            .to_string();
        let eb = b
            .execute(&data(1.0), &no_query)
            .expect_err("fails")
            .to_string();
        assert!(
            ea.contains("__alert_A") && eb.contains("__alert_B"),
            "{ea} / {eb}"
        );
        // Once every template of a text is gone, the next parse builds anew.
        let weak = Arc::downgrade(&a.parsed);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let again = Template::parse("__alert_C", bad).expect("parses");
        assert!(again.execute(&data(1.0), &no_query).is_err());
    }

    #[test]
    fn parse_errors_name_position_and_problem() {
        let err = Template::parse("__alert_X", "ok {{ $labels.x ").expect_err("must fail");
        assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
        let err = Template::parse("__alert_X", "{{ nosuchfunc 1 }}").expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "template: __alert_X:1:4: function \"nosuchfunc\" not defined"
        );
        let err = Template::parse("__alert_X", "line1\n{{ $undefined }}").expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "template: __alert_X:2:4: undefined variable \"$undefined\""
        );
        assert!(Template::parse("t", "{{ if true }}x").is_err());
        assert!(Template::parse("t", "{{ end }}").is_err());
    }

    #[test]
    fn execution_errors_are_values_not_panics() {
        let err = run_with("{{ humanize \"abc\" }}", &no_query).expect_err("must fail");
        assert!(
            err.to_string().contains(
                "error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax"
            ),
            "{err}"
        );
        let err = run_with("{{ gt $value 0 }}", &no_query).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("incompatible types for comparison"),
            "{err}"
        );
        let err = run_with("{{ query \"up\" | first }}", &no_query).expect_err("must fail");
        assert!(err.to_string().contains("no query engine"), "{err}");
        let err = run_with("{{ $value.Foo }}", &no_query).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("can't evaluate field Foo in type float64"),
            "{err}"
        );
    }
}
