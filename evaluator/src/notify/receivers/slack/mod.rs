//! Slack incoming-webhook receiver: one message attachment per notification,
//! coloured by status and severity, with the group's labels as fields and
//! runbook/dashboard links as buttons.
//!
//! # `slack_configs`
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `false` | also notify when the group resolves |
//! | `api_url` / `api_url_file` | `global.slack_api_url(_file)` | incoming webhook URL (secret) |
//! | `channel`, `username`, `icon_emoji`, `icon_url`, `link_names` | unset | message overrides (many webhooks ignore them) |
//! | `title` | `[FIRING:2] <group values> (<other common values>)` | attachment title |
//! | `title_link` | `<external_url>/#/alerts?receiver=<name>` | link behind the title |
//! | `text` | one entry per alert: name, status, severity, summary, description, distinguishing labels | attachment text (Alertmanager's default is empty; Vigil's is not) |
//! | `color` | see below | attachment colour |
//! | `pretext`, `footer`, `callback_id`, `image_url`, `thumb_url` | unset | passed through |
//! | `mrkdwn_in` | `[text]` (Vigil; Alertmanager: unset) | attachment fields Slack formats as mrkdwn; `[]` for none |
//! | `fallback` | `<title> \| <title_link>` | plain-text summary for notifications |
//! | `fields` | common labels except `alertname` (short) | `[{title, value, short}]` |
//! | `short_fields` | `false` | make every configured field short |
//! | `actions` | buttons for `runbook_url` and `dashboard_url` annotations | `[{type, text, url, style, name, value}]` |
//! | `http_config` | none | `authorization`, `bearer_token(_file)`, `basic_auth`, `follow_redirects` |
//!
//! Strings accept the placeholders of [`crate::notify::receivers::template::expand`].
//!
//! Colour, unless `color` is set: resolved `good` (green); firing with a
//! `severity` of `critical`, `page`, `error` or `high` on any firing alert
//! `danger` (red); `warning` (orange) for `warning`/`warn`/`medium`; any other
//! firing group `#439FE0` (blue). Alertmanager's default is simply
//! `danger`/`good`.
//!
//! # Limits
//!
//! Slack truncates message text beyond 40,000 characters and rejects more
//! than 100 attachments (`too_many_attachments`); blocks cap text at 3,000.
//! Vigil keeps every attachment's text within 3,000 characters and the whole
//! message's text within 40,000, titles within 1,024 (as Alertmanager), field
//! values within 2,000, and sends at most 100 attachments per message.
//! The answer of an incoming webhook is `ok`; when `api_url` points at
//! `chat.postMessage` the JSON answer's `ts` becomes the message id and
//! `"ok": false` is a non-retryable refusal.

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
