//! The strict AWS layer: a proxy in front of moto that refuses what AWS
//! refuses and moto lets through, with the status and error code AWS
//! answers, and forwards everything else untouched.
//!
//! It checks, as AWS documents them:
//! - `PutEvents`: 1 to 10 entries; each `TraceHeader` 1 to 500 characters;
//!   the entries' total size (14 bytes for `Time`, the UTF-8 bytes of
//!   `Source`, `DetailType`, `Detail` and each of `Resources`) within the
//!   request limit. Any of them refuses the whole request with
//!   `ValidationException`.
//! - `SendMessage` and `SendMessageBatch`: bodies and string attributes of
//!   characters SQS allows only (`InvalidMessageContents`); a message (body
//!   plus attributes) within the queue's `MaximumMessageSize`
//!   (`InvalidParameterValue`); a batch within the SQS maximum
//!   (`BatchRequestTooLong`). A bad entry refuses the whole batch, which is
//!   at least as strict as SQS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use auth_events_core::limits;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The limits the layer enforces; lower ones model a stricter AWS (a
/// region still on the old PutEvents limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrictLimits {
    pub put_events_max_entries: usize,
    pub put_events_max_request_bytes: usize,
    pub trace_header_max_chars: usize,
    pub sqs_max_batch_bytes: usize,
}

impl Default for StrictLimits {
    fn default() -> Self {
        Self {
            put_events_max_entries: limits::PUT_EVENTS_MAX_ENTRIES,
            put_events_max_request_bytes: limits::PUT_EVENTS_MAX_REQUEST_BYTES,
            trace_header_max_chars: limits::TRACE_HEADER_MAX_CHARS,
            sqs_max_batch_bytes: limits::SQS_MAX_MESSAGE_BYTES,
        }
    }
}

/// How AWS answered: the status, the error code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn validation(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "ValidationException",
            message,
        }
    }

    fn sqs(code: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
        }
    }

    fn length(field: &str, value_chars: usize, min: usize, max: usize) -> Option<Self> {
        let bound = if value_chars < min {
            format!("greater than or equal to {min}")
        } else if value_chars > max {
            format!("less than or equal to {max}")
        } else {
            return None;
        };
        Some(Self::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length {bound}"
        )))
    }

    /// EventBridge speaks awsJson1_1: the code in `__type` and in
    /// `x-amzn-ErrorType`.
    fn events_response(&self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "message": self.message });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        if let Ok(code) = HeaderValue::from_str(self.code) {
            headers.insert("x-amzn-ErrorType", code);
        }
        response
    }

    /// SQS speaks awsJson1_0 and stays compatible with its query-protocol
    /// codes through `x-amzn-query-error`, which the SDK reports.
    fn sqs_response(&self) -> Response {
        let body = serde_json::json!({
            "__type": format!("com.amazonaws.sqs#{}", self.code),
            "message": self.message,
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if let Ok(code) = HeaderValue::from_str(&format!("{};Sender", self.code)) {
            headers.insert("x-amzn-query-error", code);
        }
        response
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsRequest {
    #[serde(default)]
    entries: Vec<PutEventsEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsEntry {
    time: Option<serde_json::Value>,
    source: Option<String>,
    detail_type: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    trace_header: Option<String>,
}

impl PutEventsEntry {
    /// EventBridge's documented entry size.
    fn size(&self) -> usize {
        let text = |field: &Option<String>| field.as_deref().map_or(0, str::len);
        let time = if self.time.is_some() { 14 } else { 0 };
        time + text(&self.source)
            + text(&self.detail_type)
            + text(&self.detail)
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// Whether AWS would refuse this PutEvents request body, and how. A body
/// that is not PutEvents JSON is left for moto to answer.
pub fn check_put_events(body: &[u8], limits: &StrictLimits) -> Result<(), Refusal> {
    let Ok(request) = serde_json::from_slice::<PutEventsRequest>(body) else {
        return Ok(());
    };
    if let Some(refusal) = Refusal::length(
        "entries",
        request.entries.len(),
        1,
        limits.put_events_max_entries,
    ) {
        return Err(refusal);
    }
    for (index, entry) in request.entries.iter().enumerate() {
        if let Some(trace_header) = &entry.trace_header {
            let field = format!("entries.{}.member.traceHeader", index + 1);
            if let Some(refusal) = Refusal::length(
                &field,
                trace_header.chars().count(),
                1,
                limits.trace_header_max_chars,
            ) {
                return Err(refusal);
            }
        }
    }
    let total: usize = request.entries.iter().map(PutEventsEntry::size).sum();
    if total > limits.put_events_max_request_bytes {
        return Err(Refusal::validation(
            "Total size of the entries in the request is over the limit.".to_owned(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsAttribute {
    data_type: String,
    string_value: Option<String>,
    binary_value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsMessage {
    message_body: String,
    #[serde(default)]
    message_attributes: HashMap<String, SqsAttribute>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsSend {
    queue_url: String,
    #[serde(flatten)]
    message: SqsMessage,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsSendBatch {
    queue_url: String,
    entries: Vec<SqsMessage>,
}

impl SqsMessage {
    /// What SQS counts against `MaximumMessageSize`: the body and each
    /// attribute's name, type and value.
    fn size(&self) -> usize {
        let attributes: usize = self
            .message_attributes
            .iter()
            .map(|(name, attribute)| {
                let value = attribute.string_value.as_deref().map_or(0, str::len)
                    + attribute.binary_value.as_deref().map_or(0, |encoded| {
                        base64::engine::general_purpose::STANDARD
                            .decode(encoded)
                            .map_or(encoded.len(), |bytes| bytes.len())
                    });
                name.len() + attribute.data_type.len() + value
            })
            .sum();
        self.message_body.len() + attributes
    }

    fn check(&self, max_bytes: usize) -> Result<(), Refusal> {
        let strings = std::iter::once(self.message_body.as_str()).chain(
            self.message_attributes
                .values()
                .filter_map(|a| a.string_value.as_deref()),
        );
        for text in strings {
            if !text.chars().all(limits::sqs_allows_char) {
                return Err(Refusal::sqs(
                    "InvalidMessageContents",
                    "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF".to_owned(),
                ));
            }
        }
        if self.size() > max_bytes {
            return Err(Refusal::sqs(
                "InvalidParameterValue",
                format!(
                    "One or more parameters are invalid. Reason: Message must be shorter than {max_bytes} bytes."
                ),
            ));
        }
        Ok(())
    }
}

fn check_send_batch(
    batch: &SqsSendBatch,
    max_bytes: usize,
    limits: &StrictLimits,
) -> Result<(), Refusal> {
    let total: usize = batch.entries.iter().map(SqsMessage::size).sum();
    if total > limits.sqs_max_batch_bytes {
        return Err(Refusal::sqs(
            "BatchRequestTooLong",
            format!(
                "Batch requests cannot be longer than {} bytes. You have sent {total} bytes.",
                limits.sqs_max_batch_bytes
            ),
        ));
    }
    batch
        .entries
        .iter()
        .try_for_each(|entry| entry.check(max_bytes))
}

struct Layer {
    upstream: String,
    limits: StrictLimits,
    http: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    /// `MaximumMessageSize` by queue URL; forgotten when a queue's
    /// attributes may have changed.
    queue_sizes: Mutex<HashMap<String, usize>>,
}

impl Layer {
    async fn queue_max_bytes(&self, queue_url: &str) -> Option<usize> {
        if let Some(&size) = lock(&self.queue_sizes).get(queue_url) {
            return Some(size);
        }
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)
            .send()
            .await
            .ok()?;
        let size = attributes
            .attributes()?
            .get(&aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize)?
            .parse()
            .ok()?;
        lock(&self.queue_sizes).insert(queue_url.to_owned(), size);
        Some(size)
    }

    /// The refusal AWS would answer `target` with, if any.
    async fn refusal(&self, target: &str, body: &Bytes) -> Option<Response> {
        match target {
            "AWSEvents.PutEvents" => check_put_events(body, &self.limits)
                .err()
                .map(|r| r.events_response()),
            "AmazonSQS.SendMessage" => {
                let send: SqsSend = serde_json::from_slice(body).ok()?;
                let max = self.queue_max_bytes(&send.queue_url).await?;
                send.message.check(max).err().map(|r| r.sqs_response())
            }
            "AmazonSQS.SendMessageBatch" => {
                let batch: SqsSendBatch = serde_json::from_slice(body).ok()?;
                let max = self.queue_max_bytes(&batch.queue_url).await?;
                check_send_batch(&batch, max, &self.limits)
                    .err()
                    .map(|r| r.sqs_response())
            }
            // A queue made again under the same URL may have another limit.
            "AmazonSQS.SetQueueAttributes" | "AmazonSQS.CreateQueue" | "AmazonSQS.DeleteQueue" => {
                lock(&self.queue_sizes).clear();
                None
            }
            _ => None,
        }
    }

    async fn forward(&self, request: Request) -> Result<Response> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .context("reading the request")?;
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(refusal) = self.refusal(target, &body).await {
            return Ok(refusal);
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let answer = self
            .http
            .request(parts.method, format!("{}{path}", self.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await
            .context("forwarding to moto")?;
        let status = answer.status();
        let mut headers = answer.headers().clone();
        strip_hop_by_hop(&mut headers);
        let bytes = answer.bytes().await.context("reading moto's answer")?;
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Headers of one connection, not of the message: the client library sets
/// them again for the next hop.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
}

async fn proxy(State(layer): State<Arc<Layer>>, request: Request) -> Response {
    match layer.forward(request).await {
        Ok(response) => response,
        Err(error) => (StatusCode::BAD_GATEWAY, format!("{error:#}")).into_response(),
    }
}

/// A running strict layer; stopped when dropped.
#[derive(Debug)]
pub struct StrictProxy {
    pub endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StrictProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: &str, limits: StrictLimits) -> Result<Self> {
        let sdk = crate::moto::LocalMoto::sdk_config_for(upstream).await;
        let layer = Arc::new(Layer {
            upstream: upstream.trim_end_matches('/').to_owned(),
            limits,
            http: reqwest::Client::new(),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queue_sizes: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the strict layer to 127.0.0.1")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let router = Router::new()
            .fallback(proxy)
            .with_state(layer)
            .layer(DefaultBodyLimit::disable());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(error = %error, "the strict layer stopped serving");
            }
        });
        Ok(Self {
            endpoint,
            stop: Some(stop),
            task,
        })
    }
}

impl Drop for StrictProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_events(entries: &[serde_json::Value]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "Entries": entries })).expect("JSON")
    }

    fn entry(detail: &str) -> serde_json::Value {
        serde_json::json!({ "Source": "s", "DetailType": "dt", "Detail": detail })
    }

    #[test]
    fn the_entry_size_follows_the_documented_formula() {
        let entry: PutEventsEntry = serde_json::from_value(serde_json::json!({
            "Time": 1_700_000_000, "Source": "src", "DetailType": "type",
            "Detail": "{\"n\":\"é\"}", "Resources": ["arn:a", "arn:bc"],
            "TraceHeader": "not counted",
        }))
        .expect("an entry");
        assert_eq!(entry.size(), 14 + 3 + 4 + 10 + 5 + 6);
    }

    #[test]
    fn put_events_at_the_limits_passes_and_one_past_any_of_them_is_refused() {
        let limits = StrictLimits {
            put_events_max_request_bytes: 100,
            ..StrictLimits::default()
        };
        let ten: Vec<_> = (0..10).map(|_| entry("")).collect();
        assert_eq!(check_put_events(&put_events(&ten), &limits), Ok(()));
        let eleven: Vec<_> = (0..11).map(|_| entry("")).collect();
        assert_eq!(
            check_put_events(&put_events(&eleven), &limits).map_err(|r| r.code),
            Err("ValidationException")
        );
        assert_eq!(
            check_put_events(&put_events(&[]), &limits).map_err(|r| r.code),
            Err("ValidationException")
        );
        let fits = entry(&"x".repeat(97));
        assert_eq!(check_put_events(&put_events(&[fits]), &limits), Ok(()));
        let over = entry(&"x".repeat(98));
        let refusal = check_put_events(&put_events(&[over]), &limits).expect_err("over");
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert!(refusal.message.contains("Total size"), "{refusal:?}");
    }

    #[test]
    fn a_trace_header_outside_one_to_five_hundred_characters_refuses_the_request() {
        let with = |trace: &str| {
            let mut entry = entry("{}");
            entry["TraceHeader"] = serde_json::Value::from(trace);
            put_events(&[tests::entry("{}"), entry])
        };
        let limits = StrictLimits::default();
        assert_eq!(check_put_events(&with(&"é".repeat(500)), &limits), Ok(()));
        for bad in [String::new(), "a".repeat(501)] {
            let refusal = check_put_events(&with(&bad), &limits).expect_err("refused");
            assert_eq!(refusal.code, "ValidationException");
            assert!(
                refusal.message.contains("entries.2.member.traceHeader"),
                "{refusal:?}"
            );
        }
    }

    fn message(body: &str, attribute: Option<(&str, &str)>) -> SqsMessage {
        SqsMessage {
            message_body: body.to_owned(),
            message_attributes: attribute
                .map(|(name, value)| {
                    (
                        name.to_owned(),
                        SqsAttribute {
                            data_type: "String".to_owned(),
                            string_value: Some(value.to_owned()),
                            binary_value: None,
                        },
                    )
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn sqs_refuses_bad_characters_anywhere_and_counts_attributes_in_the_size() {
        assert_eq!(message("ok\t\n\r é", None).check(100), Ok(()));
        for (body, attribute) in [("a\u{0}b", None), ("ok", Some(("kind", "a\u{1b}")))] {
            assert_eq!(
                message(body, attribute).check(100).map_err(|r| r.code),
                Err("InvalidMessageContents")
            );
        }
        // 90 + "name" + "String" + "v" = 101.
        let body = "x".repeat(90);
        assert_eq!(message(&body, Some(("name", ""))).check(100), Ok(()));
        assert_eq!(
            message(&body, Some(("name", "v")))
                .check(100)
                .map_err(|r| r.code),
            Err("InvalidParameterValue")
        );
    }

    #[test]
    fn a_batch_over_the_sqs_maximum_is_refused_whole() {
        let limits = StrictLimits {
            sqs_max_batch_bytes: 10,
            ..StrictLimits::default()
        };
        let batch = |bodies: &[&str]| SqsSendBatch {
            queue_url: "q".to_owned(),
            entries: bodies.iter().map(|b| message(b, None)).collect(),
        };
        assert_eq!(
            check_send_batch(&batch(&["12345", "12345"]), 10, &limits),
            Ok(())
        );
        assert_eq!(
            check_send_batch(&batch(&["12345", "123456"]), 10, &limits).map_err(|r| r.code),
            Err("BatchRequestTooLong")
        );
    }
}
