//! Sending e-mail: the multipart message built from a notification and the
//! one SMTP conversation through the smarthost.

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue, To};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{split_addresses, EmailSettings, SmtpTls};
use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::template;
use crate::notify::receivers::{DeliveryReport, Receiver, SendError, REDELIVERY_HEADER};

/// The e-mail header carrying the notification's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Vigil-Idempotency-Key";

/// Sends notifications by e-mail.
pub struct EmailReceiver {
    settings: EmailSettings,
    /// A transport is built per send: lettre's connection pool spawns tasks
    /// when created and dropped, which must happen inside the runtime, while
    /// config (and so this receiver) may be built and dropped outside it.
    /// Alert mail is rare enough that connection reuse does not matter.
    transport: AsyncSmtpTransportBuilder,
}

impl std::fmt::Debug for EmailReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailReceiver")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why an e-mail integration could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("cannot set up TLS for smarthost {host}: {source}")]
    Tls {
        host: String,
        source: lettre::transport::smtp::Error,
    },
}

impl EmailReceiver {
    pub fn new(settings: EmailSettings) -> Result<EmailReceiver, EmailSetupError> {
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(settings.tls_server_name.clone())
                .dangerous_accept_invalid_certs(settings.tls_insecure_skip_verify);
            if let Some(pem) = &settings.tls_ca_pem {
                let certificate =
                    Certificate::from_pem(pem).map_err(|source| EmailSetupError::Tls {
                        host: settings.host.clone(),
                        source,
                    })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder.build().map_err(|source| EmailSetupError::Tls {
                host: settings.host.clone(),
                source,
            })
        };
        let tls = match settings.tls {
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
            SmtpTls::StartTlsRequired => Tls::Required(tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .tls(tls)
                .timeout(Some(settings.timeout))
                .hello_name(ClientId::Domain(settings.hello.clone()));
        if let Some(username) = &settings.auth_username {
            let password = settings
                .auth_password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder
                .credentials(Credentials::new(username.clone(), password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(EmailReceiver {
            transport: builder,
            settings,
        })
    }

    fn smarthost(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    /// Builds the MIME message for a notification.
    pub fn message(&self, notification: &Notification) -> Result<Message, SendError> {
        let build_error = |reason: String| SendError::Build {
            integration: "email",
            reason,
        };
        let s = &self.settings;
        let n = notification;
        let header = |name: &str| {
            s.headers.get(name).map(|field| {
                let fallback = || match name {
                    "Subject" => template::subject(n),
                    "To" => s.to.render(n, "email", String::new),
                    "From" => s.from.render(n, "email", String::new),
                    _ => String::new(),
                };
                field.render(n, "email", fallback)
            })
        };
        let mut subject = header("Subject").unwrap_or_default();
        if n.redelivery {
            subject = format!("{subject} {REDELIVERY_MARK}");
        }
        let from_header = header("From").unwrap_or_default();
        let to_header = header("To").unwrap_or_default();
        let from: Mailbox = from_header
            .parse()
            .map_err(|e| build_error(format!("From `{from_header}`: {e}")))?;
        let to: Mailboxes = to_header
            .parse()
            .map_err(|e| build_error(format!("To `{to_header}`: {e}")))?;
        let envelope_from_text = s.from.render(n, "email", String::new);
        let envelope_from: Address = envelope_from_text
            .parse::<Mailbox>()
            .map(|m| m.email)
            .map_err(|e| build_error(format!("from `{envelope_from_text}`: {e}")))?;
        let to_text = s.to.render(n, "email", String::new);
        let mut recipients = Vec::new();
        for address in split_addresses(&to_text) {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| build_error(format!("to `{address}`: {e}")))?;
            recipients.push(mailbox.email);
        }
        let envelope = lettre::address::Envelope::new(Some(envelope_from), recipients)
            .map_err(|e| build_error(format!("envelope: {e}")))?;

        let mut builder = Message::builder()
            .from(from)
            .mailbox(To::from(to))
            .subject(subject)
            .message_id(None)
            .envelope(envelope);
        let mut vigil_headers = vec![(IDEMPOTENCY_HEADER, n.idempotency_key())];
        if n.redelivery {
            vigil_headers.push((REDELIVERY_HEADER, "true".to_string()));
        }
        for (name, value) in vigil_headers {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value,
            ));
        }
        for name in s.headers.keys() {
            if matches!(name.as_str(), "Subject" | "From" | "To") {
                continue;
            }
            let header_name = HeaderName::new_from_ascii(name.clone())
                .map_err(|e| build_error(format!("header {name}: {e}")))?;
            let value = header(name).unwrap_or_default();
            builder = builder.raw_header(HeaderValue::new(header_name, value));
        }
        let text = s.text.render(n, "email", || template::text_alert_list(n));
        let html = s.html.render_html(n, "email", || {
            format!(
                "<pre>{}</pre>",
                template::html_escape(&template::text_alert_list(n))
            )
        });
        let body = match (text.is_empty(), html.is_empty()) {
            (false, false) => MultiPart::alternative_plain_html(text, html),
            (true, false) => MultiPart::alternative().singlepart(SinglePart::html(html)),
            (false, true) => MultiPart::alternative().singlepart(SinglePart::plain(text)),
            // Neither body: Alertmanager sends an empty multipart; a
            // plain list says at least what fired.
            (true, true) => {
                MultiPart::alternative().singlepart(SinglePart::plain(template::text_alert_list(n)))
            }
        };
        builder
            .multipart(body)
            .map_err(|e| build_error(e.to_string()))
    }
}

fn classify(smarthost: String, error: lettre::transport::smtp::Error) -> SendError {
    let mut reason = error.to_string();
    let mut handshake_failed = false;
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        // TLS handshake failures (untrusted certificate, wrong name) reach
        // us as I/O errors of kind InvalidData.
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            handshake_failed = true;
        }
        // lettre repeats its sources in its own message; keep each once.
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    // Permanent (5xx) replies, client-side misuse and TLS failures will not
    // fix themselves; transient (4xx) replies and network trouble may.
    let retryable =
        !(error.is_permanent() || error.is_client() || error.is_tls() || handshake_failed);
    if handshake_failed || error.is_tls() {
        reason.push_str("; check tls_config (ca_file, server_name) or the server's certificate");
    }
    SendError::Smtp {
        smarthost,
        reason,
        code: error.status().map(u16::from),
        retryable,
    }
}

#[async_trait]
impl Receiver for EmailReceiver {
    fn integration(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.settings.send_resolved
    }

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let message = self.message(notification)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .map(|id| id.trim().to_string());
        let transport: AsyncSmtpTransport<Tokio1Executor> = self.transport.clone().build();
        let response = transport
            .send(message)
            .await
            .map_err(|e| classify(self.smarthost(), e))?;
        Ok(DeliveryReport {
            response_code: Some(u16::from(response.code())),
            message_id,
        })
    }
}
