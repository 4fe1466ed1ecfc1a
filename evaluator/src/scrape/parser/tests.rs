//! Unit tests for the exposition parser: one per feature and per error.

use super::*;

#[derive(Debug, PartialEq)]
struct Owned {
    series: String,
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    ts: Option<i64>,
}

impl Owned {
    fn of(s: &SampleLine<'_, '_>) -> Owned {
        Owned {
            series: s.series.to_string(),
            name: s.name.to_string(),
            labels: s
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            value: s.value,
            ts: s.timestamp_ms,
        }
    }
}

fn samples(body: &str, format: Format) -> Result<Vec<Owned>, ParseError> {
    let mut parser = Parser::new(body, format);
    let mut out = Vec::new();
    while let Some(entry) = parser.next_entry()? {
        if let Entry::Sample(s) = entry {
            out.push(Owned::of(&s));
        }
    }
    Ok(out)
}

fn text(body: &str) -> Vec<Owned> {
    match samples(body, Format::PrometheusText) {
        Ok(s) => s,
        Err(e) => panic!("unexpected parse error: {e}"),
    }
}

fn om(body: &str) -> Vec<Owned> {
    match samples(body, Format::OpenMetrics) {
        Ok(s) => s,
        Err(e) => panic!("unexpected parse error: {e}"),
    }
}

fn text_err(body: &str) -> ParseError {
    match samples(body, Format::PrometheusText) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e,
    }
}

fn om_err(body: &str) -> ParseError {
    match samples(body, Format::OpenMetrics) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn content_type_selects_the_format() {
    assert_eq!(
        Format::from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(Some("text/plain; version=0.0.4")),
        Format::PrometheusText
    );
    assert_eq!(
        Format::from_content_type(Some("application/json")),
        Format::PrometheusText
    );
    assert_eq!(Format::from_content_type(None), Format::PrometheusText);
}

#[test]
fn text_sample_without_labels() {
    let s = text("http_requests_total 1027\n");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name, "http_requests_total");
    assert_eq!(s[0].series, "http_requests_total");
    assert!(s[0].labels.is_empty());
    assert_eq!(s[0].value, 1027.0);
    assert_eq!(s[0].ts, None);
}

#[test]
fn text_sample_with_labels_and_timestamp_in_milliseconds() {
    let s = text("http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n");
    assert_eq!(s[0].labels, pairs(&[("method", "post"), ("code", "200")]));
    assert_eq!(
        s[0].series,
        "http_requests_total{method=\"post\",code=\"200\"}"
    );
    assert_eq!(s[0].ts, Some(1_395_066_363_000));
}

#[test]
fn text_allows_trailing_comma_whitespace_and_empty_label_sets() {
    let s = text("a{ x = \"1\" , } 1\nb{} 2\n  c\t3\n");
    assert_eq!(s[0].labels, pairs(&[("x", "1")]));
    assert!(s[1].labels.is_empty());
    assert_eq!(s[2].name, "c");
    assert_eq!(s[2].value, 3.0);
}

#[test]
fn escaped_label_values_are_unescaped() {
    let s = text(r#"m{path="C:\\dir\\file",msg="say \"hi\"",multi="a\nb",odd="\d"} 1"#);
    assert_eq!(
        s[0].labels,
        pairs(&[
            ("path", r"C:\dir\file"),
            ("msg", "say \"hi\""),
            ("multi", "a\nb"),
            ("odd", r"\d")
        ])
    );
}

#[test]
fn unescaped_label_values_are_borrowed() {
    let body = "m{a=\"plain\",b=\"es\\\\caped\"} 1\n";
    let mut parser = Parser::new(body, Format::PrometheusText);
    let Ok(Some(Entry::Sample(s))) = parser.next_entry() else {
        panic!("expected a sample");
    };
    assert!(matches!(s.labels[0].value, Cow::Borrowed("plain")));
    assert!(matches!(s.labels[1].value, Cow::Owned(_)));
}

#[test]
fn special_float_values_parse() {
    let s = text("a NaN\nb +Inf\nc -Inf\nd 1.5e-3\ne -0.25\n");
    assert!(s[0].value.is_nan());
    assert_eq!(s[1].value, f64::INFINITY);
    assert_eq!(s[2].value, f64::NEG_INFINITY);
    assert_eq!(s[3].value, 0.0015);
    assert_eq!(s[4].value, -0.25);
}

#[test]
fn help_type_and_comments_in_text_format() {
    let body = "# HELP m Some \\\\ help\\nmore\n# TYPE m counter\n# just a comment\n#\nm 1\n";
    let mut parser = Parser::new(body, Format::PrometheusText);
    let mut entries = Vec::new();
    while let Ok(Some(e)) = parser.next_entry() {
        entries.push(format!("{e:?}"));
    }
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries[0].contains("Some \\\\ help\\nmore"),
        "{}",
        entries[0]
    );
    assert!(entries[1].contains("Counter"));
}

#[test]
fn histogram_and_summary_lines_are_plain_samples() {
    let body = "# TYPE h histogram\nh_bucket{le=\"0.1\"} 3\nh_bucket{le=\"+Inf\"} 5\nh_sum 1.2\nh_count 5\n\
                # TYPE s summary\ns{quantile=\"0.99\"} 0.3\ns_sum 4\ns_count 9\n";
    let s = text(body);
    assert_eq!(s.len(), 7);
    assert_eq!(s[1].labels, pairs(&[("le", "+Inf")]));
    assert_eq!(s[4].labels, pairs(&[("quantile", "0.99")]));
}

#[test]
fn empty_text_body_has_no_samples() {
    assert!(text("").is_empty());
    assert!(text("\n\n# comment\n").is_empty());
}

#[test]
fn openmetrics_timestamps_are_float_seconds() {
    let s = om("m_total 1 1520879607.789\n# EOF\n");
    assert_eq!(s[0].ts, Some(1_520_879_607_789));
}

#[test]
fn openmetrics_help_type_unit_and_eof() {
    let body = "# TYPE req counter\n# UNIT req_seconds seconds\n# HELP req Requests.\nreq_total 3\n# EOF\n";
    let mut parser = Parser::new(body, Format::OpenMetrics);
    let mut kinds = Vec::new();
    loop {
        match parser.next_entry() {
            Ok(Some(Entry::Type { kind, .. })) => kinds.push(format!("{kind:?}")),
            Ok(Some(Entry::Unit { unit, .. })) => kinds.push(unit.to_string()),
            Ok(Some(Entry::Help { help, .. })) => kinds.push(help.to_string()),
            Ok(Some(Entry::Sample(s))) => kinds.push(s.name.to_string()),
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(kinds, ["Counter", "seconds", "Requests.", "req_total"]);
}

#[test]
fn openmetrics_eof_without_trailing_newline_is_accepted() {
    assert_eq!(om("a 1\n# EOF").len(), 1);
}

#[test]
fn openmetrics_exemplars_are_skipped() {
    let s = om("foo_bucket{le=\"0.5\"} 7 # {trace_id=\"abc\"} 0.43 1520879607.1\nfoo_total 3 1520879607 # {a=\"b\"} 1\n# EOF\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].value, 7.0);
    assert_eq!(s[0].ts, None);
    assert_eq!(s[1].ts, Some(1_520_879_607_000));
}

#[test]
fn openmetrics_created_lines_are_ordinary_samples() {
    let s = om("# TYPE c counter\nc_total 1\nc_created 1520879607.5\n# EOF\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].name, "c_created");
    assert_eq!(s[1].value, 1_520_879_607.5);
}

#[test]
fn missing_eof_in_openmetrics_is_an_error() {
    let e = om_err("a 1\nb 2\n");
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("# EOF"), "{e}");
}

#[test]
fn content_after_eof_is_an_error() {
    let e = om_err("a 1\n# EOF\nb 2\n");
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("after"), "{e}");
}

#[test]
fn empty_line_in_openmetrics_is_an_error() {
    let e = om_err("a 1\n\nb 2\n# EOF\n");
    assert_eq!(e.line, 2);
}

#[test]
fn free_comment_in_openmetrics_is_an_error() {
    let e = om_err("# hello\n# EOF\n");
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("HELP"), "{e}");
}

#[test]
fn invalid_metric_name_is_reported_with_line() {
    let e = text_err("ok 1\n9bad 1\n");
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("metric name"), "{e}");
    assert_eq!(e.to_string(), format!("line 2: {}", e.reason));
}

#[test]
fn invalid_label_name_is_an_error() {
    let e = text_err("m{1a=\"x\"} 1\n");
    assert_eq!(e.line, 1);
    assert!(e.reason.contains("invalid label name"), "{e}");
    let e = text_err("m{a-b=\"x\"} 1\n");
    assert!(e.reason.contains("\"=\""), "{e}");
}

#[test]
fn unterminated_label_value_is_an_error() {
    let e = text_err("a 1\nm{a=\"x} 1\n");
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("unterminated"), "{e}");
}

#[test]
fn unquoted_label_value_is_an_error() {
    let e = text_err("m{a=x} 1\n");
    assert!(e.reason.contains("quoted"), "{e}");
}

#[test]
fn missing_closing_brace_is_an_error() {
    let e = text_err("m{a=\"x\" 1\n");
    assert!(e.reason.contains("\",\" or \"}\""), "{e}");
    let e = text_err("m{a=\"x\",\n");
    assert!(e.reason.contains("missing \"}\""), "{e}");
}

#[test]
fn duplicate_label_names_are_an_error() {
    let e = text_err("m{a=\"1\",a=\"2\"} 1\n");
    assert!(e.reason.contains("duplicate label name \"a\""), "{e}");
}

fn many_labels(n: usize, last: &str) -> String {
    let mut line = String::from("m{");
    for i in 0..n {
        line.push_str(&format!("l{i}=\"v\","));
    }
    line.push_str(&format!("{last}=\"v\"}} 1\n"));
    line
}

#[test]
fn duplicate_label_names_are_found_among_thousands_of_labels() {
    // Past the pairwise size the check sorts the names: a duplicate
    // anywhere is still found, and distinct names still pass.
    let e = text_err(&many_labels(20_000, "l17"));
    assert!(e.reason.contains("duplicate label name \"l17\""), "{e}");
    assert_eq!(e.limit, None);
    let parsed = text(&many_labels(20_000, "other"));
    assert_eq!(parsed[0].labels.len(), 20_001);
}

#[test]
fn label_limit_stops_a_line_at_the_first_label_too_many() {
    let body = format!("ok{{a=\"1\"}} 1\n{}", many_labels(20_000, "x"));
    let mut parser = Parser::new(&body, Format::PrometheusText).with_label_limit(128);
    assert!(matches!(parser.next_entry(), Ok(Some(Entry::Sample(_)))));
    let e = parser.next_entry().expect_err("over the label limit");
    assert_eq!(e.line, 2);
    assert_eq!(e.limit, Some("label_limit"));
    assert!(e.reason.contains("more than 128 labels"), "{e}");

    // Exactly at the limit is fine, and so are exemplars within it.
    let body = many_labels(127, "x");
    let mut parser = Parser::new(&body, Format::PrometheusText).with_label_limit(128);
    assert!(matches!(parser.next_entry(), Ok(Some(Entry::Sample(_)))));

    // Pieces pass the limit on to every piece's parser.
    let pieces = Pieces::new(Format::PrometheusText).with_label_limit(2);
    let mut parser = pieces
        .parser(b"m{a=\"1\",b=\"2\",c=\"3\"} 1\n", true)
        .expect("utf-8");
    assert_eq!(
        parser.next_entry().expect_err("3 labels").limit,
        Some("label_limit")
    );
}

#[test]
fn missing_value_is_an_error() {
    let e = text_err("m{a=\"1\"}\n");
    assert!(e.reason.contains("missing value"), "{e}");
    let e = text_err("m{a=\"1\"}1\n");
    assert!(e.reason.contains("expected a space"), "{e}");
}

#[test]
fn invalid_value_is_an_error() {
    let e = text_err("m one\n");
    assert!(e.reason.contains("invalid sample value \"one\""), "{e}");
}

#[test]
fn float_timestamp_in_text_format_is_an_error() {
    let e = text_err("m 1 1.5\n");
    assert!(e.reason.contains("integer milliseconds"), "{e}");
}

#[test]
fn trailing_garbage_is_an_error() {
    let e = text_err("m 1 1000 extra\n");
    assert!(e.reason.contains("unexpected \"extra\""), "{e}");
}

#[test]
fn invalid_type_is_an_error() {
    let e = text_err("# TYPE m countr\n");
    assert!(e.reason.contains("invalid metric type \"countr\""), "{e}");
    let e = om_err("# TYPE m untyped\n# EOF\n");
    assert!(e.reason.contains("invalid metric type"), "{e}");
}

#[test]
fn invalid_name_in_type_line_is_an_error() {
    let e = text_err("# TYPE 1m counter\n");
    assert!(e.reason.contains("invalid metric name"), "{e}");
}

#[test]
fn malformed_exemplar_is_an_error() {
    let e = om_err("m 1 # trace\n# EOF\n");
    assert!(e.reason.contains("exemplar"), "{e}");
    let e = om_err("m 1 # {a=\"b\"}\n# EOF\n");
    assert!(e.reason.contains("missing exemplar value"), "{e}");
}

#[test]
fn exemplar_in_text_format_is_an_error() {
    let e = text_err("m 1 # {a=\"b\"} 1\n");
    assert!(e.reason.contains("unexpected"), "{e}");
}

#[test]
fn invalid_utf8_is_reported_with_line() {
    let body = b"a 1\nb{x=\"\xff\"} 1\n";
    let Err(e) = Parser::from_bytes(body, Format::PrometheusText) else {
        panic!("expected a UTF-8 error");
    };
    assert_eq!(e.line, 2);
    assert!(e.reason.contains("UTF-8"));
}

#[test]
fn parser_stops_after_the_first_error() {
    let mut parser = Parser::new("bad{ 1\ngood 1\n", Format::PrometheusText);
    assert!(parser.next_entry().is_err());
    assert_eq!(parser.next_entry(), Ok(None));
}

#[test]
fn long_input_in_errors_is_truncated_on_a_char_boundary() {
    let line = format!("m{{a=é{}}} 1\n", "é".repeat(100));
    let e = text_err(&line);
    assert!(e.reason.len() < 120, "{}", e.reason);
}

#[test]
fn name_validators_follow_the_prometheus_rules() {
    assert!(is_valid_metric_name("a:b_c9"));
    assert!(!is_valid_metric_name("9a"));
    assert!(!is_valid_metric_name(""));
    assert!(is_valid_label_name("_a9"));
    assert!(!is_valid_label_name("a:b"));
}

/// Deterministic xorshift generator: the randomised test must be
/// reproducible in CI without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn drain(body: &[u8], format: Format) {
    if let Ok(mut parser) = Parser::from_bytes(body, format) {
        let mut count = 0usize;
        while let Ok(Some(_)) = parser.next_entry() {
            count += 1;
            assert!(count <= body.len() + 1, "parser does not make progress");
        }
    }
}

#[test]
fn mutated_expositions_never_panic() {
    let seeds: [&[u8]; 3] = [
        b"# HELP m Help \\n text\n# TYPE m histogram\nm_bucket{le=\"0.1\",path=\"/a\\\"b\"} 3 1000\nm_sum 1.5\nm_count 3\n",
        b"# TYPE c counter\n# UNIT c seconds\nc_total{a=\"x\"} 1 1520879607.789 # {trace=\"1\"} 0.5 1520879607\nc_created 1.5e9\n# EOF\n",
        b"up 1\nx{a=\"\\\\\",b=\"\\n\"} NaN\ny -Inf\n",
    ];
    let alphabet = b"{}\"\\=, \t\n#.:_aZ09+-eEINFnaf";
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut body = seeds[round % seeds.len()].to_vec();
        for _ in 0..=rng.below(6) {
            let at = rng.below(body.len() + 1);
            match rng.below(4) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 => body.insert(at, alphabet[rng.below(alphabet.len())]),
                2 if at < body.len() => body[at] = alphabet[rng.below(alphabet.len())],
                _ => body.insert(at, (rng.next() & 0xff) as u8),
            }
        }
        drain(&body, Format::PrometheusText);
        drain(&body, Format::OpenMetrics);
    }
}

/// Samples (or the first error) of `body` parsed in pieces cut after the
/// newlines at `cuts`, the way a scrape parses a body as it arrives.
fn samples_in_pieces(
    body: &[u8],
    format: Format,
    cuts: &[usize],
) -> Result<Vec<Owned>, ParseError> {
    let mut pieces = Pieces::new(format);
    let mut out = Vec::new();
    let mut start = 0;
    let ends = cuts.iter().copied().chain([body.len()]);
    for (i, end) in ends.enumerate() {
        let last = i == cuts.len();
        let mut parser = pieces.parser(&body[start..end], last)?;
        while let Some(entry) = parser.next_entry()? {
            if let Entry::Sample(s) = entry {
                out.push(Owned::of(&s));
            }
        }
        pieces.finish_piece(&parser);
        start = end;
    }
    Ok(out)
}

fn whole(body: &[u8], format: Format) -> Result<Vec<Owned>, ParseError> {
    match std::str::from_utf8(body) {
        Ok(text) => samples(text, format),
        Err(_) => Parser::from_bytes(body, format).map(|_| Vec::new()),
    }
}

fn outcome(result: Result<Vec<Owned>, ParseError>) -> String {
    match result {
        // NaN != NaN, so compare the printed form.
        Ok(samples) => format!("{samples:?}"),
        Err(e) => format!("error at line {}: {}", e.line, e.reason),
    }
}

#[test]
fn a_body_parsed_in_pieces_gives_what_it_gives_whole() {
    let seeds: [&[u8]; 4] = [
        b"# HELP m Help \\n text\n# TYPE m histogram\nm_bucket{le=\"0.1\",path=\"/a\\\"b\"} 3 1000\nm_sum 1.5\nm_count 3\n",
        b"# TYPE c counter\n# UNIT c seconds\nc_total{a=\"x\"} 1 1520879607.789 # {trace=\"1\"} 0.5 1520879607\nc_created 1.5e9\n# EOF\n",
        b"up 1\nx{a=\"\\\\\",b=\"\\n\"} NaN\ny -Inf\n\n",
        b"a 1\n# EOF\nb 2\n",
    ];
    let alphabet = b"{}\"\\=, \t\n#.:_aZ09+-eEINFnaf";
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for round in 0..4_000 {
        let mut body = seeds[round % seeds.len()].to_vec();
        for _ in 0..rng.below(4) {
            let at = rng.below(body.len() + 1);
            match rng.below(3) {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 => body.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => body.insert(at, (rng.next() & 0xff) as u8),
            }
        }
        let newlines: Vec<usize> = (0..body.len())
            .filter(|&i| body[i] == b'\n')
            .map(|i| i + 1)
            .collect();
        let cuts: Vec<usize> = newlines
            .iter()
            .copied()
            .filter(|_| rng.below(2) == 0)
            .collect();
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            if std::str::from_utf8(&body).is_err() {
                // Whole, the UTF-8 check comes first; in pieces, the first
                // error in line order wins. Either way the body fails.
                let Err(whole_error) = whole(&body, format) else {
                    panic!("invalid UTF-8 accepted")
                };
                let Err(piece_error) = samples_in_pieces(&body, format, &cuts) else {
                    panic!("invalid UTF-8 accepted in pieces")
                };
                assert!(piece_error.line <= whole_error.line);
                continue;
            }
            let expected = outcome(whole(&body, format));
            for cuts in [&cuts[..], &newlines[..]] {
                assert_eq!(
                    outcome(samples_in_pieces(&body, format, cuts)),
                    expected,
                    "{format:?} body {:?} cut at {cuts:?}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
}
