//! A rule group on a datasource is evaluated in two steps: every rule's
//! expression is queried first, concurrently (at most
//! [`MAX_CONCURRENT_QUERIES`] at a time) and asynchronously (the
//! datasource is remote; the evaluation of the other groups goes on
//! meanwhile), then the group evaluates as any other against
//! [`Prefetched`], which answers from those results. A template's `query`
//! call, which cannot be known in advance, is sent to the datasource then
//! (the evaluation waits for it, on a multi-threaded runtime only).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::client::DatasourceClient;
use crate::rules::engine::{QueryEngine, QueryError, QueryResult};

/// Queries one group has in flight at once: enough to hide the round
/// trips, few enough that a big group does not flood the datasource.
pub const MAX_CONCURRENT_QUERIES: usize = 16;

/// The answers of one group's queries at one tick.
pub struct Prefetched {
    answers: HashMap<(String, i64), Result<QueryResult, QueryError>>,
    client: Arc<DatasourceClient>,
    deadline: DateTime<Utc>,
}

impl Prefetched {
    /// Queries every expression of `exprs` at `t_ms` (each once).
    pub async fn fetch(
        client: Arc<DatasourceClient>,
        exprs: Vec<String>,
        t_ms: i64,
        deadline: DateTime<Utc>,
    ) -> Prefetched {
        let mut unique = exprs;
        unique.sort();
        unique.dedup();
        let results: Vec<_> = futures::stream::iter(
            unique
                .iter()
                .map(|e| client.instant_query(e, t_ms, deadline)),
        )
        .buffered(MAX_CONCURRENT_QUERIES)
        .collect()
        .await;
        let answers = unique
            .into_iter()
            .zip(results)
            .map(|(e, r)| ((e, t_ms), r))
            .collect();
        Prefetched {
            answers,
            client,
            deadline,
        }
    }
}

impl QueryEngine for Prefetched {
    fn instant_query(&self, expr: &str, t_ms: i64) -> Result<QueryResult, QueryError> {
        if let Some(answer) = self.answers.get(&(expr.to_string(), t_ms)) {
            return answer.clone();
        }
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| {
                QueryError(
                    "a template query on a datasource needs the multi-threaded runtime".into(),
                )
            })?;
        tokio::task::block_in_place(|| {
            handle.block_on(self.client.instant_query(expr, t_ms, self.deadline))
        })
    }
}
