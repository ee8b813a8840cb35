//! `local-stack demo`: the whole story on a fresh local stack, printed as it
//! happens. Every hop is the real thing: HTTP into the token exchange,
//! DynamoDB, the stream, EventBridge, SQS and the profile handler on moto;
//! the SRE steps run this very binary, as an operator would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use auth_events_aws::migrate::Names;
use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::outbox::pending_shard_of;
use auth_events_core::testing::EntryFault;
use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::dev_signer::{DevIdentity, DevSigner, claims};
use local_stack::stack::{DEV_PROJECT, DevOptions, DevStack, load_or_create_signer};
use serde_json::Value;

use crate::cli::{DemoArgs, Global};

const LEGEND: &str = "\
Legend: desktop app --HTTP--> auth-exchange --PutItem--> outbox table
        outbox stream --(local mapping)--> outbox-relay --PutEvents--> bus
        bus rule --(local target)--> user-profile --TransactWriteItems--> Users
        failures --> DLQ (SQS) --outboxctl redrive--> bus";

const WAIT: Duration = Duration::from_mins(1);

struct Demo {
    stack: DevStack,
    /// The SRE's own binary: the demo's operator steps run exactly it.
    outboxctl: PathBuf,
    signer: DevSigner,
    http: reqwest::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

fn step(number: u8, title: &str) {
    println!("\n== {number}. {title} ==");
}

pub async fn run(global: &Global, args: &DemoArgs) -> Result<ExitCode> {
    let names = Names::for_prefix(&global.prefix)?;
    println!(
        "auth-events demo: a sign-in becomes a user.signed_in event, delivered at least once\n"
    );
    println!("{LEGEND}");

    step(
        1,
        "start the local stack (moto, migrations, handlers, local drivers)",
    );
    let options = DevOptions {
        port: 0,
        moto_port: args.moto_port,
        ..DevOptions::default()
    };
    let stack = DevStack::start(names, options).await?;
    println!("  AWS endpoint (moto)  {}", stack.endpoint);
    println!("  token exchange       POST {}", stack.exchange_url());
    let outboxctl = outboxctl_binary()?;
    let demo = Demo {
        outboxctl,
        dynamodb: aws_sdk_dynamodb::Client::new(&stack.sdk),
        sqs: aws_sdk_sqs::Client::new(&stack.sdk),
        signer: load_or_create_signer()?,
        http: reqwest::Client::new(),
        stack,
    };
    let result = demo.story().await;
    let stopped = demo.stack.stop().await;
    result?;
    stopped?;
    println!("\ndemo finished: the local stack is stopped");
    Ok(ExitCode::SUCCESS)
}

/// `OUTBOXCTL`, or the `outboxctl` built beside this binary (`make demo`
/// builds both, each on its own so that no feature of this crate reaches it).
fn outboxctl_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("OUTBOXCTL") {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_exe().context("locating the local-stack binary")?;
    let beside = here.with_file_name(format!("outboxctl{}", std::env::consts::EXE_SUFFIX));
    if !beside.exists() {
        bail!(
            "outboxctl is not built at {}: run `cargo build -p outboxctl` first (or `make demo`), or set OUTBOXCTL",
            beside.display()
        );
    }
    Ok(beside)
}

impl Demo {
    async fn story(&self) -> Result<()> {
        step(2, "sign users in over HTTP (alice twice)");
        for (uid, name) in [
            ("alice", "Alice"),
            ("bob", "Bob"),
            ("carol", "Carol"),
            ("alice", "Alice"),
        ] {
            self.sign_in(uid, name).await?;
        }

        step(
            3,
            "follow each hop: outbox item -> published event -> Users item",
        );
        let expected = BTreeMap::from([("alice", 2), ("bob", 1), ("carol", 1)]);
        self.wait_for_users(&expected).await?;
        self.print_outbox().await?;
        self.print_users().await?;

        step(
            4,
            "a fault: EventBridge refuses the relay (AccessDenied), and a poison outbox item",
        );
        self.stack.bus.fail_entries(Some(EntryFault {
            code: "AccessDeniedException".to_owned(),
            ratio: 1.0,
        }));
        println!("  the sign-in never waits on the pipeline: these still get credentials");
        for (uid, name) in [("dave", "Dave"), ("erin", "Erin")] {
            self.sign_in(uid, name).await?;
        }
        let poison = self.insert_poison().await?;
        println!("  inserted outbox item {poison} whose detail breaks the contract");
        self.wait_for_dlq(3).await?;
        self.outboxctl(&["dlq", "stats"], 0).await?;
        self.outboxctl(&["dlq", "list"], 0).await?;

        step(5, "heal the bus, then redrive");
        self.stack.bus.fail_entries(None);
        println!(
            "  the poison message cannot be published, so redrive keeps it and exits non-zero:"
        );
        self.outboxctl(&["redrive", "--yes"], 1).await?;
        let poison_message = self.poison_message_id().await?;
        println!("  an SRE reads it, sees it can never be published, and removes it:");
        self.outboxctl(&["dlq", "show", &poison_message], 0).await?;
        self.outboxctl(&["dlq", "delete", &poison_message, "--yes"], 0)
            .await?;

        step(6, "converged: every sign-in counted once, the DLQ empty");
        let expected = BTreeMap::from([
            ("alice", 2),
            ("bob", 1),
            ("carol", 1),
            ("dave", 1),
            ("erin", 1),
        ]);
        self.wait_for_users(&expected).await?;
        self.print_users().await?;
        self.outboxctl(&["dlq", "stats"], 0).await?;
        if self.dlq_depth().await? != 0 {
            bail!("the DLQ is not empty at the end of the demo");
        }
        Ok(())
    }

    async fn sign_in(&self, uid: &str, name: &str) -> Result<()> {
        let mut identity = DevIdentity::new(uid);
        identity.email = Some(format!("{uid}@example.com"));
        identity.name = Some(name.to_owned());
        let token = self.signer.sign(&claims(DEV_PROJECT, &identity))?;
        let started = Instant::now();
        let response = self
            .http
            .post(self.stack.exchange_url())
            .bearer_auth(token)
            .send()
            .await
            .context("calling the token exchange")?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the exchange's answer")?;
        let body: Value =
            serde_json::from_str(&text).context("the exchange's answer is not JSON")?;
        let key = body
            .pointer("/credentials/AccessKeyId")
            .and_then(Value::as_str)
            .map_or_else(
                || body.to_string(),
                |k| format!("AccessKeyId {}…", k.get(..8).unwrap_or(k)),
            );
        println!(
            "  {uid:<6} -> HTTP {}  {key}  ({} ms)",
            status.as_u16(),
            started.elapsed().as_millis()
        );
        if !status.is_success() {
            bail!("sign-in of {uid} failed with {status}");
        }
        Ok(())
    }

    async fn users(&self) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>> {
        let items = self
            .dynamodb
            .scan()
            .table_name(self.stack.names.users_table())
            .send()
            .await
            .context("scanning the Users table")?
            .items
            .unwrap_or_default();
        Ok(items)
    }

    /// Polls until every user has its expected sign-in count.
    async fn wait_for_users(&self, expected: &BTreeMap<&str, u64>) -> Result<()> {
        let started = Instant::now();
        loop {
            let counts: BTreeMap<String, u64> = self
                .users()
                .await?
                .iter()
                .filter_map(|item| {
                    let user = item.get("userId")?.as_s().ok()?.clone();
                    let count = item.get("signInCount")?.as_n().ok()?.parse().ok()?;
                    Some((user, count))
                })
                .collect();
            if expected
                .iter()
                .all(|(user, count)| counts.get(*user) == Some(count))
            {
                println!(
                    "  Users table reached the expected counts in {} ms",
                    started.elapsed().as_millis()
                );
                return Ok(());
            }
            if started.elapsed() > WAIT {
                bail!(
                    "Users did not converge within {WAIT:?}: expected {expected:?}, have {counts:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn print_outbox(&self) -> Result<()> {
        let items = self
            .dynamodb
            .scan()
            .table_name(self.stack.names.outbox_table())
            .send()
            .await
            .context("scanning the outbox")?
            .items
            .unwrap_or_default();
        println!("  outbox items:");
        for item in items {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let user = serde_json::from_str::<Value>(&text("detail"))
                .ok()
                .and_then(|d| d["userId"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let state = if item.contains_key("publishedAt") {
                format!(
                    "published {} as bus event {}",
                    text("publishedAt"),
                    text("busEventId")
                )
            } else {
                "pending".to_owned()
            };
            println!("    {}  {user:<6} {state}", text("eventId"));
        }
        Ok(())
    }

    async fn print_users(&self) -> Result<()> {
        println!("  Users table:");
        println!(
            "    {:<6} {:>5}  {:<24}  {:<24}  email",
            "user", "count", "createdAt", "lastLoginDate"
        );
        let mut users = self.users().await?;
        users.sort_by_key(|item| item.get("userId").and_then(|v| v.as_s().ok()).cloned());
        for item in users {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().or_else(|_| v.as_n()).ok())
                    .cloned()
                    .unwrap_or_default()
            };
            println!(
                "    {:<6} {:>5}  {:<24}  {:<24}  {}",
                text("userId"),
                text("signInCount"),
                text("createdAt"),
                text("lastLoginDate"),
                text("email")
            );
        }
        Ok(())
    }

    /// An outbox item the contract refuses (empty userId, malformed email):
    /// what a buggy producer or a hand edit might write.
    async fn insert_poison(&self) -> Result<EventId> {
        let event_id = EventId::new();
        let now = Timestamp::now();
        let detail = serde_json::json!({
            "eventId": event_id.to_string(), "schemaVersion": 1, "userId": "", "email": "not-an-email",
            "timestamp": now.to_string(),
        });
        let s = |v: String| AttributeValue::S(v);
        self.dynamodb
            .put_item()
            .table_name(self.stack.names.outbox_table())
            .item("eventId", s(event_id.to_string()))
            .item("source", s(auth_events_core::contract::SOURCE.to_owned()))
            .item("detailType", s("user.signed_in".to_owned()))
            .item("detail", s(detail.to_string()))
            .item("createdAt", s(now.to_string()))
            .item(
                "expiresAt",
                AttributeValue::N((now.epoch_seconds() + 86_400).to_string()),
            )
            .item("pendingShard", s(pending_shard_of(event_id)))
            .item("attempts", AttributeValue::N("0".to_owned()))
            .send()
            .await
            .context("inserting the poison outbox item")?;
        Ok(event_id)
    }

    async fn dlq_depth(&self) -> Result<usize> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.stack.dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await
            .context("reading the DLQ depth")?;
        let count = |name| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        Ok(
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + count(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ),
        )
    }

    async fn wait_for_dlq(&self, messages: usize) -> Result<()> {
        let started = Instant::now();
        while self.dlq_depth().await? < messages {
            if started.elapsed() > WAIT {
                bail!("the DLQ did not reach {messages} messages within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("  {messages} messages are now in the DLQ");
        Ok(())
    }

    /// The message id of the one message left: the poison record.
    async fn poison_message_id(&self) -> Result<String> {
        let output = self.outboxctl_output(&["dlq", "list", "--json"]).await?;
        let listed: Value = serde_json::from_str(&output).context("reading `dlq list --json`")?;
        listed["messages"]
            .as_array()
            .and_then(|messages| messages.first())
            .and_then(|m| m["messageId"].as_str())
            .map(str::to_owned)
            .context("no message left in the DLQ")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.outboxctl);
        command
            .args(args)
            .args([
                "--endpoint-url",
                &self.stack.endpoint,
                "--prefix",
                &self.stack.names.prefix,
            ])
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .stdin(std::process::Stdio::null());
        command
    }

    async fn outboxctl_output(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command(args)
            .output()
            .await
            .context("running outboxctl")?;
        if !output.status.success() {
            bail!(
                "`outboxctl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `outboxctl ARGS` against the local stack and prints what an
    /// operator would see; the demo fails if the exit status is not the one
    /// the step expects.
    async fn outboxctl(&self, args: &[&str], expected_exit: i32) -> Result<()> {
        println!("\n  $ outboxctl {}", args.join(" "));
        let output = self
            .command(args)
            .output()
            .await
            .context("running outboxctl")?;
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            println!("    {line}");
        }
        let exit = output.status.code().unwrap_or(-1);
        println!("    (exit {exit})");
        if exit != expected_exit {
            bail!(
                "`outboxctl {}` exited {exit}, expected {expected_exit}",
                args.join(" ")
            );
        }
        Ok(())
    }
}
