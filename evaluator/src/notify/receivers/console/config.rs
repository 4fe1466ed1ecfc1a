//! `console_configs[]` (Vigil): the one field as written (serde) and the
//! settings it gives.

use std::sync::Arc;

use serde::Deserialize;

use super::send::ConsoleReceiver;
use crate::notify::receivers::config::{GlobalReceiverDefaults, Problems};
use crate::notify::receivers::{Receiver, ReceiverKind};

/// One entry of a receiver's `console_configs` (Vigil): a block printed on
/// stdout per notification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfigRaw {
    /// Also print resolved notifications; default `true`.
    pub send_resolved: Option<bool>,
}

/// A validated console integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub send_resolved: bool,
}

impl Default for ConsoleSettings {
    /// Vigil's default: resolved notifications are printed too.
    fn default() -> Self {
        ConsoleSettings {
            send_resolved: true,
        }
    }
}

impl ReceiverKind for ConsoleConfigRaw {
    const SECTION: &'static str = "console_configs";
    const SEND_RESOLVED: bool = true;

    fn build(
        self,
        _global: &GlobalReceiverDefaults,
        _p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>> {
        let settings = ConsoleSettings {
            send_resolved: self.send_resolved.unwrap_or(Self::SEND_RESOLVED),
        };
        Some(Arc::new(ConsoleReceiver::new(settings)))
    }
}
