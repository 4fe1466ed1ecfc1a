//! The `expect` expression of a probe: an `evalexpr` boolean expression over
//! the response, compiled once at config time and evaluated after every probe.
//!
//! Compiling checks everything that can be checked without a response
//! (syntax, variable and function names, no assignments, a boolean result on a
//! sample response), so a typo fails `vigil-exporter check` instead of turning
//! a healthy target red at 3 a.m.

use std::fmt;
use std::time::Duration;

use evalexpr::{Context, EvalexprError, EvalexprResult, Node, Value};
use http::HeaderMap;

use super::expect_syntax;

/// The variables an expectation can read, in the order the docs list them.
pub const VARIABLES: [&str; 5] = ["status", "latency_ms", "body", "headers", "cert_days_left"];

/// Functions Vigil adds on top of the evalexpr built-ins.
pub const FUNCTIONS: [&str; 2] = ["header", "contains_str"];

/// One line per variable and function, used in error messages so the user
/// sees what is available without opening the docs.
const AVAILABLE: &str = "available variables: status (int), latency_ms (float), body (string), \
headers (tuple of \"name: value\" strings, names lower-case), cert_days_left (float, +inf for http); \
functions: header(\"name\"), contains_str(haystack, needle) and the evalexpr built-ins \
(len, contains, str::regex_matches, str::to_lowercase, min, max, if, ...)";

/// Why an expectation could not be compiled or evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ExpectError {
    /// The source is empty or only whitespace.
    #[error("the expectation is empty; remove `expect` to use the default `{default}`, or write a boolean expression ({available})", default = Expectation::DEFAULT_SOURCE, available = AVAILABLE)]
    Empty,
    /// The source is not a complete expression: an operator without its
    /// operand, two values without an operator, an unclosed bracket, ...
    #[error("the expectation `{source_text}` is incomplete: {message}")]
    Malformed {
        /// The expression as written.
        source_text: String,
        /// Character offset (0-based) in the expression where the problem
        /// is, so that the config check can point at its column.
        at: usize,
        /// What is missing there and what to write.
        message: String,
    },
    /// evalexpr could not parse the source.
    #[error("the expectation `{source_text}` is not a valid expression: {message}; {available}", available = AVAILABLE)]
    Syntax {
        /// The expression as written.
        source_text: String,
        /// evalexpr's description of the problem.
        message: String,
    },
    /// The source names a variable that a probe does not provide.
    #[error("the expectation `{source_text}` uses unknown variable `{name}`; {available}", available = AVAILABLE)]
    UnknownVariable {
        /// The expression as written.
        source_text: String,
        /// The unknown identifier.
        name: String,
    },
    /// The source calls a function that neither Vigil nor evalexpr provides.
    #[error("the expectation `{source_text}` calls unknown function `{name}`; {available}", available = AVAILABLE)]
    UnknownFunction {
        /// The expression as written.
        source_text: String,
        /// The unknown identifier.
        name: String,
    },
    /// The source assigns to a variable, which would only ever change a copy.
    #[error("the expectation `{source_text}` assigns to `{name}`; an expectation only reads the response, use `==` to compare")]
    Assignment {
        /// The expression as written.
        source_text: String,
        /// The assigned identifier.
        name: String,
    },
    /// The expression produced something other than `true` or `false`.
    #[error("the expectation `{source_text}` must produce true or false but produced {value}; compare it, e.g. `status == 200`")]
    NotBoolean {
        /// The expression as written.
        source_text: String,
        /// The produced value, as evalexpr prints it.
        value: String,
    },
    /// Evaluating the expression failed on this response (type error, bad
    /// regex, wrong number of function arguments, ...).
    #[error("the expectation `{source_text}` could not be evaluated: {message}")]
    Evaluation {
        /// The expression as written.
        source_text: String,
        /// evalexpr's description of the problem.
        message: String,
    },
}

/// What a probe observed, as the expectation sees it.
#[derive(Debug, Clone, Default)]
pub struct ResponseFacts {
    /// HTTP status code of the final response (after redirects if followed).
    pub status: u16,
    /// Time from the start of the probe until the body was read.
    pub latency: Duration,
    /// The response body, decoded as UTF-8 (invalid bytes replaced), cut at
    /// [`super::MAX_BODY_BYTES`].
    pub body: String,
    /// Response headers.
    pub headers: HeaderMap,
    /// Days until the earliest certificate expiry; `None` for plain HTTP.
    pub cert_days_left: Option<f64>,
}

/// A compiled `expect` expression.
#[derive(Debug, Clone)]
pub struct Expectation {
    source: String,
    tree: Node,
    is_default: bool,
}

impl Expectation {
    /// The expectation of a target without `expect`: any 2xx or 3xx status.
    pub const DEFAULT_SOURCE: &'static str = "status >= 200 && status < 400";

    /// Parses and checks `source`. See the module docs of [`crate::probe`]
    /// for the variables and functions it may use.
    pub fn compile(source: &str) -> Result<Self, ExpectError> {
        let mut expectation = compile_unchecked(source)?;
        expectation.is_default = false;
        Ok(expectation)
    }

    /// The expression as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True for the built-in default (no `expect` configured). A failing
    /// default expectation is reported with reason `status`, a failing user
    /// expectation with reason `expectation`.
    pub fn is_default(&self) -> bool {
        self.is_default
    }

    /// Evaluates the expectation against one response: `Ok(true)` when it
    /// holds, `Ok(false)` when it does not, `Err` when it cannot be decided.
    pub fn evaluate(&self, facts: &ResponseFacts) -> Result<bool, ExpectError> {
        let context = FactsContext::new(facts);
        match self.tree.eval_with_context(&context) {
            Ok(Value::Boolean(holds)) => Ok(holds),
            Ok(other) => Err(ExpectError::NotBoolean {
                source_text: self.source.clone(),
                value: describe_value(&other),
            }),
            Err(error) => Err(ExpectError::Evaluation {
                source_text: self.source.clone(),
                message: error.to_string(),
            }),
        }
    }
}

impl Default for Expectation {
    fn default() -> Self {
        match compile_unchecked(Self::DEFAULT_SOURCE) {
            Ok(mut expectation) => {
                expectation.is_default = true;
                expectation
            }
            // The default is a constant covered by unit tests; failing here
            // would be a bug in this file, not bad input.
            Err(error) => unreachable!("the default expectation must compile: {error}"),
        }
    }
}

impl PartialEq for Expectation {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.is_default == other.is_default
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn compile_unchecked(source: &str) -> Result<Expectation, ExpectError> {
    if source.trim().is_empty() {
        return Err(ExpectError::Empty);
    }
    let source_text = source.to_string();
    // evalexpr builds a tree from `status ==` and only fails when evaluating
    // it, so completeness is checked first, with positions.
    expect_syntax::check(source).map_err(|malformed| ExpectError::Malformed {
        source_text: source_text.clone(),
        at: malformed.at,
        message: malformed.message,
    })?;
    let tree = evalexpr::build_operator_tree(source).map_err(|error| ExpectError::Syntax {
        source_text: source_text.clone(),
        message: error.to_string(),
    })?;
    if let Some(operator) = incomplete_operator(&tree) {
        // A shape the check above does not know; still refused, without a
        // position.
        return Err(ExpectError::Malformed {
            source_text: source_text.clone(),
            at: source.chars().count(),
            message: format!(
                "the operator `{operator}` is missing an operand; check that every operator has a value on each side"
            ),
        });
    }
    if let Some(name) = tree.iter_write_variable_identifiers().next() {
        return Err(ExpectError::Assignment {
            source_text,
            name: name.to_string(),
        });
    }
    if let Some(name) = tree
        .iter_read_variable_identifiers()
        .find(|name| !VARIABLES.contains(name))
    {
        return Err(ExpectError::UnknownVariable {
            source_text,
            name: name.to_string(),
        });
    }
    if let Some(name) = tree
        .iter_function_identifiers()
        .find(|name| !FUNCTIONS.contains(name) && !is_builtin_function(name))
    {
        return Err(ExpectError::UnknownFunction {
            source_text,
            name: name.to_string(),
        });
    }
    let expectation = Expectation {
        source: source_text,
        tree,
        is_default: false,
    };
    // A dry run on a typical healthy response catches expressions that can
    // never be boolean (`status + 1`). Evaluation errors are left for run
    // time: they may depend on the real response (a regex on an empty body).
    if let Err(error @ ExpectError::NotBoolean { .. }) = expectation.evaluate(&sample_response()) {
        return Err(error);
    }
    Ok(expectation)
}

/// The first operator in `tree` with fewer operands than it takes, which
/// evalexpr would only report when evaluating.
fn incomplete_operator(tree: &Node) -> Option<String> {
    use evalexpr::Operator;
    let operator = tree.operator();
    let wanted = match operator {
        Operator::Add
        | Operator::Sub
        | Operator::Mul
        | Operator::Div
        | Operator::Mod
        | Operator::Exp
        | Operator::Eq
        | Operator::Neq
        | Operator::Gt
        | Operator::Lt
        | Operator::Geq
        | Operator::Leq
        | Operator::And
        | Operator::Or
        | Operator::Assign
        | Operator::AddAssign
        | Operator::SubAssign
        | Operator::MulAssign
        | Operator::DivAssign
        | Operator::ModAssign
        | Operator::ExpAssign
        | Operator::AndAssign
        | Operator::OrAssign => 2,
        Operator::Neg | Operator::Not | Operator::FunctionIdentifier { .. } => 1,
        // Brackets may be empty (`()`), sequences hold what they hold.
        Operator::RootNode
        | Operator::Tuple
        | Operator::Chain
        | Operator::Const { .. }
        | Operator::VariableIdentifierWrite { .. }
        | Operator::VariableIdentifierRead { .. } => 0,
    };
    if tree.children().len() < wanted {
        return Some(operator.to_string());
    }
    tree.children().iter().find_map(incomplete_operator)
}

fn sample_response() -> ResponseFacts {
    ResponseFacts {
        status: 200,
        latency: Duration::from_millis(1),
        body: String::new(),
        headers: HeaderMap::new(),
        cert_days_left: Some(90.0),
    }
}

/// evalexpr 11 does not export its table of built-ins, so ask it: calling a
/// built-in with an empty tuple fails with a type error, calling anything else
/// fails with "function not found".
fn is_builtin_function(name: &str) -> bool {
    let Ok(call) = evalexpr::build_operator_tree(&format!("{name}(())")) else {
        return false;
    };
    !matches!(
        call.eval_with_context(&evalexpr::EmptyContextWithBuiltinFunctions),
        Err(EvalexprError::FunctionIdentifierNotFound(_))
    )
}

fn describe_value(value: &Value) -> String {
    let kind = match value {
        Value::String(_) => "string",
        Value::Float(_) => "float",
        Value::Int(_) => "int",
        Value::Boolean(_) => "boolean",
        Value::Tuple(_) => "tuple",
        Value::Empty => "empty",
    };
    format!("{kind} {value}")
}

/// The evalexpr context of one evaluation: the variables are computed once,
/// because evalexpr hands out references to them.
struct FactsContext<'a> {
    status: Value,
    latency_ms: Value,
    body: Value,
    headers: Value,
    cert_days_left: Value,
    header_map: &'a HeaderMap,
}

impl<'a> FactsContext<'a> {
    fn new(facts: &'a ResponseFacts) -> Self {
        let headers = facts
            .headers
            .iter()
            .map(|(name, value)| {
                Value::String(format!(
                    "{}: {}",
                    name.as_str(),
                    String::from_utf8_lossy(value.as_bytes())
                ))
            })
            .collect();
        Self {
            status: Value::Int(i64::from(facts.status)),
            latency_ms: Value::Float(facts.latency.as_secs_f64() * 1000.0),
            body: Value::String(facts.body.clone()),
            headers: Value::Tuple(headers),
            cert_days_left: Value::Float(facts.cert_days_left.unwrap_or(f64::INFINITY)),
            header_map: &facts.headers,
        }
    }

    fn header(&self, argument: &Value) -> EvalexprResult<Value> {
        let Value::String(name) = argument else {
            return Err(EvalexprError::CustomMessage(format!(
                "header() takes one string, the header name, e.g. header(\"content-type\"); got {}",
                describe_value(argument)
            )));
        };
        // HeaderMap lookups are case-insensitive; repeated headers are
        // joined the way HTTP allows them to be folded.
        let values: Vec<String> = self
            .header_map
            .get_all(name.to_ascii_lowercase().as_str())
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        Ok(Value::String(values.join(", ")))
    }
}

fn contains_str(argument: &Value) -> EvalexprResult<Value> {
    match argument {
        Value::Tuple(pair) => match pair.as_slice() {
            [Value::String(haystack), Value::String(needle)] => {
                Ok(Value::Boolean(haystack.contains(needle.as_str())))
            }
            _ => Err(EvalexprError::CustomMessage(format!(
                "contains_str() takes two strings (haystack, needle); got {}",
                describe_value(argument)
            ))),
        },
        _ => Err(EvalexprError::CustomMessage(format!(
            "contains_str() takes two strings (haystack, needle); got {}",
            describe_value(argument)
        ))),
    }
}

impl Context for FactsContext<'_> {
    fn get_value(&self, identifier: &str) -> Option<&Value> {
        match identifier {
            "status" => Some(&self.status),
            "latency_ms" => Some(&self.latency_ms),
            "body" => Some(&self.body),
            "headers" => Some(&self.headers),
            "cert_days_left" => Some(&self.cert_days_left),
            _ => None,
        }
    }

    fn call_function(&self, identifier: &str, argument: &Value) -> EvalexprResult<Value> {
        match identifier {
            "header" => self.header(argument),
            "contains_str" => contains_str(argument),
            _ => Err(EvalexprError::FunctionIdentifierNotFound(
                identifier.to_string(),
            )),
        }
    }

    fn are_builtin_functions_disabled(&self) -> bool {
        false
    }

    fn set_builtin_functions_disabled(&mut self, disabled: bool) -> EvalexprResult<()> {
        if disabled {
            Err(EvalexprError::BuiltinFunctionsCannotBeDisabled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn facts(status: u16) -> ResponseFacts {
        ResponseFacts {
            status,
            ..ResponseFacts::default()
        }
    }

    #[test]
    fn default_expectation_accepts_2xx_and_3xx_only() {
        let expectation = Expectation::default();
        assert!(expectation.is_default());
        for (status, holds) in [
            (199, false),
            (200, true),
            (302, true),
            (399, true),
            (400, false),
            (500, false),
        ] {
            assert_eq!(
                expectation.evaluate(&facts(status)),
                Ok(holds),
                "status {status}"
            );
        }
    }

    #[test]
    fn compiled_expression_is_not_the_default_even_with_the_default_text() {
        let expectation = Expectation::compile(Expectation::DEFAULT_SOURCE).expect("compiles");
        assert!(!expectation.is_default());
    }

    #[test]
    fn unclosed_bracket_is_rejected_with_the_source_and_its_position() {
        let error = Expectation::compile("status == (200").expect_err("unbalanced");
        let message = error.to_string();
        assert!(
            matches!(error, ExpectError::Malformed { at: 10, .. }),
            "{error:?}"
        );
        assert!(message.contains("status == (200"), "{message}");
        assert!(message.contains("never closed"), "{message}");
    }

    #[test]
    fn operator_without_operand_is_refused_at_compile_time_not_at_every_probe() {
        // evalexpr 11 builds a tree for these and fails only when evaluating.
        for (source, at) in [
            ("status ==", 9),
            ("status == 200 &&", 16),
            ("status ===", 9),
        ] {
            assert!(evalexpr::build_operator_tree(source).is_ok(), "{source}");
            let error = Expectation::compile(source).expect_err(source);
            assert!(
                matches!(&error, ExpectError::Malformed { at: found, .. } if *found == at),
                "{source}: {error:?}"
            );
        }
    }

    #[test]
    fn tree_check_finds_operators_short_of_operands() {
        let incomplete = evalexpr::build_operator_tree("status == 200 &&").expect("builds");
        assert_eq!(incomplete_operator(&incomplete).as_deref(), Some("&&"));
        let complete = evalexpr::build_operator_tree("f(()) && !(a == -1)").expect("builds");
        assert_eq!(incomplete_operator(&complete), None);
    }

    #[test]
    fn unknown_variable_is_rejected_by_name() {
        let error = Expectation::compile("stauts == 200").expect_err("typo");
        assert_eq!(
            error,
            ExpectError::UnknownVariable {
                source_text: "stauts == 200".into(),
                name: "stauts".into()
            }
        );
        assert!(error.to_string().contains("cert_days_left"));
    }

    #[test]
    fn unknown_function_is_rejected_by_name() {
        let error = Expectation::compile("hedaer(\"x\") == \"y\"").expect_err("typo");
        assert!(
            matches!(&error, ExpectError::UnknownFunction { name, .. } if name == "hedaer"),
            "{error:?}"
        );
    }

    #[test]
    fn evalexpr_builtins_and_vigil_functions_are_accepted() {
        for source in [
            "len(body) > 0",
            "str::regex_matches(body, \"^ok\")",
            "contains(headers, \"x: y\")",
            "header(\"Content-Type\") == \"text/plain\"",
            "contains_str(body, \"ok\")",
            "min(latency_ms, 5) < 10",
        ] {
            Expectation::compile(source).unwrap_or_else(|error| panic!("{source}: {error}"));
        }
    }

    #[test]
    fn assignment_is_rejected() {
        let error = Expectation::compile("status = 200").expect_err("assignment");
        assert!(matches!(error, ExpectError::Assignment { .. }), "{error:?}");
    }

    #[test]
    fn expression_that_is_never_boolean_is_rejected_at_compile_time() {
        let error = Expectation::compile("status + 1").expect_err("int result");
        assert!(
            matches!(&error, ExpectError::NotBoolean { value, .. } if value == "int 201"),
            "{error:?}"
        );
    }

    #[test]
    fn empty_expression_is_rejected() {
        assert_eq!(
            Expectation::compile("  ").expect_err("empty"),
            ExpectError::Empty
        );
    }

    #[test]
    fn non_boolean_result_at_run_time_is_an_error_not_a_panic() {
        let expectation =
            Expectation::compile("if(status == 200, true, \"nope\")").expect("compiles");
        let error = expectation
            .evaluate(&facts(500))
            .expect_err("string result");
        assert!(
            matches!(&error, ExpectError::NotBoolean { value, .. } if value == "string \"nope\""),
            "{error:?}"
        );
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_missing_header_is_empty() {
        let mut response = facts(200);
        response
            .headers
            .insert("content-type", HeaderValue::from_static("application/json"));
        let present = Expectation::compile("header(\"Content-Type\") == \"application/json\"")
            .expect("compiles");
        let missing = Expectation::compile("header(\"x-missing\") == \"\"").expect("compiles");
        assert_eq!(present.evaluate(&response), Ok(true));
        assert_eq!(missing.evaluate(&response), Ok(true));
    }

    #[test]
    fn headers_tuple_holds_lower_case_name_value_pairs() {
        let mut response = facts(200);
        response
            .headers
            .insert("X-Env", HeaderValue::from_static("prod"));
        let expectation =
            Expectation::compile("contains(headers, \"x-env: prod\")").expect("compiles");
        assert_eq!(expectation.evaluate(&response), Ok(true));
    }

    #[test]
    fn latency_is_fractional_milliseconds() {
        let mut response = facts(200);
        response.latency = Duration::from_micros(1500);
        let expectation =
            Expectation::compile("latency_ms > 1.4 && latency_ms < 1.6").expect("compiles");
        assert_eq!(expectation.evaluate(&response), Ok(true));
    }

    #[test]
    fn cert_days_left_is_infinite_for_plain_http_so_minimum_checks_pass() {
        let expectation = Expectation::compile("cert_days_left > 14").expect("compiles");
        assert_eq!(expectation.evaluate(&facts(200)), Ok(true));
        let mut expiring = facts(200);
        expiring.cert_days_left = Some(3.5);
        assert_eq!(expectation.evaluate(&expiring), Ok(false));
    }

    #[test]
    fn type_error_at_run_time_is_an_evaluation_error() {
        let expectation =
            Expectation::compile("str::regex_matches(body, \"(\")").expect("compiles");
        let error = expectation.evaluate(&facts(200)).expect_err("bad regex");
        assert!(matches!(error, ExpectError::Evaluation { .. }), "{error:?}");
    }
}
