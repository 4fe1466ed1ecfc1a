//! Label values of the HTTP metrics: the route value of unmatched requests
//! and the folding of request methods into ten `method` values.

use http::Method;

/// `route` label of every request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// `method` label of every method outside the standard nine.
pub const OTHER_METHOD: &str = "other";

/// The `method` label values, indexed by [`MethodLabel`].
const METHOD_NAMES: [&str; METHOD_COUNT] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    OTHER_METHOD,
];
pub(crate) const METHOD_COUNT: usize = 10;

/// A request method folded into one of the ten `method` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MethodLabel(u8);

impl MethodLabel {
    pub(crate) fn of(method: &Method) -> Self {
        let index = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::CONNECT => 5,
            Method::OPTIONS => 6,
            Method::TRACE => 7,
            Method::PATCH => 8,
            _ => 9,
        };
        Self(index)
    }

    pub(crate) fn as_str(self) -> &'static str {
        METHOD_NAMES[usize::from(self.0)]
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The label at `index` (as returned by [`Self::index`]); out-of-range
    /// indexes fold into `other`.
    pub(crate) fn from_index(index: usize) -> Self {
        Self(u8::try_from(index.min(METHOD_COUNT - 1)).unwrap_or(9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name() {
        for name in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            let method = Method::from_bytes(name.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(method.map(|m| MethodLabel::of(&m).as_str()), Ok(name));
        }
    }

    #[test]
    fn non_standard_methods_fold_into_other() {
        for name in ["PROPFIND", "PURGE", "get", "BREW"] {
            let method = Method::from_bytes(name.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(
                method.map(|m| MethodLabel::of(&m).as_str()),
                Ok(OTHER_METHOD),
                "{name}"
            );
        }
    }
}
