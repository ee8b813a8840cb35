//! `local-stack dev` as a developer runs it: the whole pipeline over HTTP on
//! one machine, then the seed's own test flow with the standard AWS CLI.
//!
//! `cargo test -p local-stack --test dev_stack -- --nocapture` shows the
//! sign-in → Users item latencies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_events_tests::{moto_endpoint, unique_prefix};
use local_stack::dev_signer::{DevIdentity, DevSigner, claims};

const DEADLINE: Duration = Duration::from_mins(1);

/// A running `local-stack dev`, in its own working directory (so its
/// development key is its own), stopped with SIGINT as Ctrl-C would.
struct Dev {
    child: Option<Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Dev {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// `local-stack dev` with `extra` arguments.
    fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique_prefix());
        std::fs::create_dir_all(&dir).expect("a working directory");
        let env_file = dir.join("stack.env");
        let child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
            .args(["dev", "--port", "0", "--sweep-interval", "2s", "--env-file"])
            .arg(&env_file)
            .args([
                "--endpoint-url",
                moto_endpoint(),
                "--prefix",
                &unique_prefix(),
            ])
            .args(extra)
            .current_dir(&dir)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("local-stack dev starts");
        let started = Instant::now();
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&env_file) {
                break text;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "local-stack dev did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let env = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            child: Some(child),
            dir,
            env,
        }
    }

    fn var(&self, name: &str) -> &str {
        self.env.iter().find(|(k, _)| k == name).map_or_else(
            || panic!("{name} missing from the env file"),
            |(_, v)| v.as_str(),
        )
    }

    fn signer(&self) -> DevSigner {
        let pem = std::fs::read_to_string(self.dir.join(".local/dev-firebase-key.pem"))
            .expect("the dev key");
        DevSigner::from_private_key_pem("auth-events-local-1", &pem).expect("a valid key")
    }

    /// Ctrl-C: every task stops and the process exits 0.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                break exit;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "local-stack dev did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(exit.success(), "{exit:?}");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn sign_in_count(dynamodb: &aws_sdk_dynamodb::Client, table: &str, user: &str) -> u64 {
    dynamodb
        .get_item()
        .table_name(table)
        .key(
            "userId",
            aws_sdk_dynamodb::types::AttributeValue::S(user.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get the user")
        .item
        .and_then(|item| {
            item.get("signInCount")
                .and_then(|n| n.as_n().ok())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::test]
async fn fifty_sign_ins_over_http_give_fifty_users_updates_with_the_right_counts() {
    let mut dev = Dev::start();
    let signer = dev.signer();
    let sdk = auth_events_tests::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let users_table = dev.var("USERS_TABLE").to_owned();
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    for i in 0..50 {
        let user = format!("user-{}", i % 10);
        let mut identity = DevIdentity::new(&user);
        identity.email = Some(format!("{user}@example.com"));
        let token = signer
            .sign(&claims("auth-events-local", &identity))
            .expect("signed");
        let expected = i / 10 + 1;
        let started = Instant::now();
        let response = http
            .post(dev.var("EXCHANGE_URL"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the exchange answers");
        assert_eq!(response.status().as_u16(), 200);
        while sign_in_count(&dynamodb, &users_table, &user).await < expected {
            assert!(
                started.elapsed() < DEADLINE,
                "sign-in {i} never reached the Users table"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(started.elapsed());
    }
    for i in 0..10 {
        assert_eq!(
            sign_in_count(&dynamodb, &users_table, &format!("user-{i}")).await,
            5
        );
    }
    latencies.sort();
    println!(
        "sign-in -> Users item over 50 sign-ins: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    dev.interrupt();
}

/// Through `local-stack dev --strict`, one client's bad trace header delays
/// no other client's event: on AWS a 600-character or an empty `TraceHeader`
/// refuses the whole PutEvents request that carries it.
#[tokio::test]
async fn twelve_concurrent_sign_ins_with_bad_trace_headers_all_reach_users_behind_the_strict_layer()
{
    let mut dev = Dev::start_with(&["--strict"]);
    let strict_sdk =
        local_stack::moto::LocalMoto::sdk_config_for(dev.var("AWS_ENDPOINT_URL")).await;
    let refused = aws_sdk_eventbridge::Client::new(&strict_sdk)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(dev.var("EVENT_BUS_NAME"))
                .source("test.strict")
                .detail_type("probe")
                .detail("{}")
                .trace_header("")
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        refused
            .map_err(
                |e| aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&e).map(str::to_owned)
            )
            .err(),
        Some(Some("ValidationException".to_owned())),
        "the stack's AWS endpoint is the strict layer"
    );

    let signer = dev.signer();
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
    let oversized = format!("{root};Data={}", "a".repeat(600 - root.len() - 6));
    assert_eq!(oversized.len(), 600);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let sign_ins = (0..12).map(|i| {
        let user = format!("strict-{i}");
        let mut identity = DevIdentity::new(&user);
        identity.email = Some(format!("{user}@example.com"));
        let token = signer
            .sign(&claims("auth-events-local", &identity))
            .expect("signed");
        let trace = match i {
            0 => oversized.clone(),
            1 => String::new(),
            _ => format!("{root};Parent=53995c3f42cd8ad8;Sampled=1"),
        };
        let request = http
            .post(dev.var("EXCHANGE_URL"))
            .bearer_auth(token)
            .header("x-amzn-trace-id", trace);
        async move { request.send().await.expect("the exchange answers").status() }
    });
    for status in futures_util::future::join_all(sign_ins).await {
        assert_eq!(status.as_u16(), 200);
    }

    let sdk = auth_events_tests::sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let users_table = dev.var("USERS_TABLE").to_owned();
    let mut waiting: Vec<String> = (0..12).map(|i| format!("strict-{i}")).collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for user in waiting {
            if sign_in_count(&dynamodb, &users_table, &user).await == 0 {
                still.push(user);
            }
        }
        waiting = still;
        assert!(
            started.elapsed() < DEADLINE,
            "not in the Users table after {DEADLINE:?}: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dlq = aws_sdk_sqs::Client::new(&sdk)
        .receive_message()
        .queue_url(dev.var("DLQ_URL"))
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("the DLQ answers");
    assert!(dlq.messages().is_empty(), "{:?}", dlq.messages());
    println!(
        "12 concurrent sign-ins behind the strict layer, all in Users after {:?}",
        started.elapsed()
    );
    dev.interrupt();
}

fn aws_cli() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/aws")
}

#[tokio::test]
async fn the_seeds_test_flow_works_with_the_standard_aws_cli() {
    let dev = Dev::start();
    let aws = aws_cli();
    assert!(aws.exists(), "the AWS CLI is not in .venv: run `make venv`");
    let detail = r#"{"userId":"test-user-123","email":"test@example.com","displayName":"Test User","timestamp":"2024-01-15T10:30:00Z"}"#;
    let entries = serde_json::json!([{
        "Source": "interview-companion.auth",
        "DetailType": "user.signed_in",
        "Detail": detail,
        "EventBusName": dev.var("EVENT_BUS_NAME"),
    }]);
    let run = |args: &[&str]| {
        Command::new(&aws)
            .args(args)
            .args([
                "--endpoint-url",
                moto_endpoint(),
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("the AWS CLI runs")
    };
    let put = run(&["events", "put-events", "--entries", &entries.to_string()]);
    assert!(put.status.success(), "{put:?}");
    let put: serde_json::Value = serde_json::from_slice(&put.stdout).expect("JSON");
    assert_eq!(put["FailedEntryCount"], 0);

    let key = r#"{"userId":{"S":"test-user-123"}}"#;
    let started = Instant::now();
    let item = loop {
        let got = run(&[
            "dynamodb",
            "get-item",
            "--table-name",
            dev.var("USERS_TABLE"),
            "--key",
            key,
        ]);
        assert!(got.status.success(), "{got:?}");
        let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap_or_default();
        if got.get("Item").is_some() {
            break got["Item"].clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the seed's user never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(item["email"]["S"], "test@example.com");
    assert_eq!(item["displayName"]["S"], "Test User");
    assert_eq!(item["signInCount"]["N"], "1");
}
