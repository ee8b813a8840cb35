//! The STS issuer against a local stand-in for the STS query API: what
//! AssumeRole is sent, and how each kind of failure is classified.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_events_core::contract::UserId;
use auth_exchange::credentials::session_name;
use auth_exchange::{CredentialIssuer, IssueError, StsIssuer};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::ASSUMED;

const ROLE: &str = "arn:aws:iam::123456789012:role/desktop-app";

fn error_xml(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>4fe8b4c5-d3f3-4b2d-9a1e-0c0e7e0f0a11</RequestId>
</ErrorResponse>"#
    )
}

#[derive(Default)]
struct Sts {
    answer: Mutex<(u16, String)>,
    requests: Mutex<Vec<Vec<(String, String)>>>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

async fn serve(State(sts): State<Arc<Sts>>, body: String) -> Response {
    let form = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    sts.requests.lock().expect("lock").push(form);
    let (status, xml) = sts.answer.lock().expect("lock").clone();
    (
        StatusCode::from_u16(status).expect("status"),
        [(header::CONTENT_TYPE, "text/xml")],
        xml,
    )
        .into_response()
}

async fn start(status: u16, xml: String) -> (String, Arc<Sts>) {
    let sts = Arc::new(Sts {
        answer: Mutex::new((status, xml)),
        requests: Mutex::default(),
    });
    let app = Router::new()
        .route("/", post(serve))
        .with_state(Arc::clone(&sts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });
    (url, sts)
}

fn issuer(endpoint: &str) -> StsIssuer {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        // One attempt, so each test sees exactly the answer it scripted.
        .retry_config(RetryConfig::disabled())
        .build();
    StsIssuer::new(
        aws_sdk_sts::Client::from_conf(config),
        ROLE,
        Duration::from_mins(15),
    )
}

fn uid(value: &str) -> UserId {
    UserId::parse(value).expect("uid")
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn assume_role_names_the_user_as_session_source_identity_and_tag() {
    let (url, sts) = start(200, ASSUMED.to_owned()).await;
    let credentials = issuer(&url)
        .issue(&uid("uid-1"))
        .await
        .expect("credentials");
    assert_eq!(credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
    assert_eq!(
        credentials.secret_access_key,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
    );
    assert_eq!(credentials.session_token, "IQoJb3JpZ2luX2VjEXAMPLE");
    assert_eq!(credentials.expiration, "2026-11-29T13:00:00Z");

    let requests = sts.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1);
    let form = &requests[0];
    assert_eq!(param(form, "Action"), Some("AssumeRole"));
    assert_eq!(param(form, "RoleArn"), Some(ROLE));
    assert_eq!(param(form, "RoleSessionName"), Some("uid-1"));
    assert_eq!(param(form, "SourceIdentity"), Some("uid-1"));
    assert_eq!(param(form, "DurationSeconds"), Some("900"));
    assert_eq!(param(form, "Tags.member.1.Key"), Some("userId"));
    assert_eq!(param(form, "Tags.member.1.Value"), Some("uid-1"));
}

#[tokio::test]
async fn a_uid_sts_cannot_take_verbatim_gets_a_derived_session_name() {
    let (url, sts) = start(200, ASSUMED.to_owned()).await;
    let odd = "user#with spaces";
    issuer(&url).issue(&uid(odd)).await.expect("credentials");
    let form = sts.requests.lock().expect("lock")[0].clone();
    assert_eq!(
        param(&form, "RoleSessionName"),
        Some(session_name(odd).as_str())
    );
    assert_eq!(
        param(&form, "SourceIdentity"),
        Some(session_name(odd).as_str())
    );
}

/// The AssumeRole parameters as AWS documents them: RoleSessionName and
/// SourceIdentity `[\w+=,.@-]{2,64}`; a session tag value letters, digits,
/// spaces and `_.:/=+-@`, at most 256 characters. moto checks none of them.
fn aws_refusal(form: &[(String, String)]) -> Option<String> {
    let name_ok = |v: &str| {
        (2..=64).contains(&v.len())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    };
    let tag_ok = |v: &str| {
        v.chars().count() <= 256
            && v.chars()
                .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
    };
    for (name, valid) in [
        ("RoleSessionName", &name_ok as &dyn Fn(&str) -> bool),
        ("SourceIdentity", &name_ok),
        ("Tags.member.1.Value", &tag_ok),
    ] {
        let value = param(form, name).unwrap_or_default();
        if !valid(value) {
            return Some(format!("{name}={value:?}"));
        }
    }
    None
}

#[tokio::test]
async fn uids_with_commas_slashes_spaces_or_non_ascii_send_an_assume_role_aws_accepts() {
    let (url, sts) = start(200, ASSUMED.to_owned()).await;
    let uids = ["a,b", "alice/../bob", "with space", "ünïcødé-üser", "uid-1"];
    for odd in uids {
        issuer(&url).issue(&uid(odd)).await.expect("credentials");
    }
    let requests = sts.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), uids.len());
    for (odd, form) in uids.iter().zip(&requests) {
        assert_eq!(aws_refusal(form), None, "{odd:?}");
        let tag = param(form, "Tags.member.1.Value").expect("tagged");
        assert!(
            !tag.contains('/') && !tag.contains(','),
            "{odd:?} -> {tag:?}"
        );
    }
}

async fn classify(status: u16, code: &str) -> IssueError {
    let (url, _sts) = start(status, error_xml(code, "scripted failure")).await;
    issuer(&url)
        .issue(&uid("uid-1"))
        .await
        .expect_err("scripted failure")
}

#[tokio::test]
async fn throttling_is_unavailable_503() {
    assert_eq!(classify(400, "Throttling").await.status(), 503);
}

#[tokio::test]
async fn a_5xx_is_unavailable_503() {
    assert_eq!(classify(500, "InternalFailure").await.status(), 503);
    assert_eq!(classify(503, "SomethingUnknown").await.status(), 503);
}

#[tokio::test]
async fn access_denied_is_a_refusal_502() {
    let error = classify(403, "AccessDenied").await;
    assert_eq!(error.status(), 502);
    assert_eq!(error.code(), "AccessDenied");
}

#[tokio::test]
async fn an_unreachable_sts_is_unavailable_503() {
    // Bind and drop, so the port is almost certainly closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let error = issuer(&url)
        .issue(&uid("uid-1"))
        .await
        .expect_err("nothing listens");
    assert_eq!(error.status(), 503);
}
