//! A hostile or broken writer's outbox items never delay a sign-in's event:
//! through the local stack behind the strict AWS layer (so SQS refuses a
//! letter as AWS would), each bad item lands in the DLQ, where `outboxctl
//! dlq list` finds it by its key, and nothing stays pending.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use auth_events_aws::migrate::Names;
use auth_events_core::contract::{Email, EventId, Timestamp, UserAction, UserEvent, UserId};
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
use auth_events_tests::{moto_endpoint, unique_prefix};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::dev_signer::{DevIdentity, claims};
use local_stack::stack::{DEV_PROJECT, DevOptions, DevStack, load_or_create_signer};
use local_stack::strict::StrictLimits;

const DEADLINE: Duration = Duration::from_mins(1);

type Item = HashMap<String, AttributeValue>;

fn valid_item(user: &str) -> (OutboxRecord, Item) {
    let event = UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(user).expect("valid"),
        Email::parse(format!("{user}@example.com")).expect("valid"),
        Timestamp::now(),
    );
    let record = OutboxRecord::new(&event, Timestamp::now(), DEFAULT_TTL, None);
    let item = serde_dynamo::to_item(&record).expect("an item");
    (record, item)
}

/// The eight shapes of a bad outbox item, each under its own key.
fn malformed_items() -> Vec<(&'static str, EventId, Item)> {
    let with = |what: &'static str, attribute: &str, value: AttributeValue| {
        let slug: String = what.chars().filter(char::is_ascii_alphanumeric).collect();
        let (record, mut item) = valid_item(&format!("bad-{slug}"));
        item.insert(attribute.to_owned(), value);
        (what, record.event_id, item)
    };
    let (other, _) = valid_item("bad-key");
    let disagreeing = EventId::new();
    let mut other_key = serde_dynamo::to_item::<_, Item>(&other).expect("an item");
    other_key.insert(
        "eventId".to_owned(),
        AttributeValue::S(disagreeing.to_string()),
    );
    let (breaking, _) = valid_item("bad-ffff");
    let bare = EventId::new();
    vec![
        with("detail N", "detail", AttributeValue::N("42".to_owned())),
        with(
            "detail B",
            "detail",
            AttributeValue::B(Blob::new(b"{}".to_vec())),
        ),
        with(
            "detail M",
            "detail",
            AttributeValue::M(HashMap::from([(
                "userId".to_owned(),
                AttributeValue::S("x".to_owned()),
            )])),
        ),
        ("key disagrees with detail.eventId", disagreeing, other_key),
        with(
            "unknown detail-type",
            "detailType",
            AttributeValue::S("user.exploded".to_owned()),
        ),
        with(
            "foreign source",
            "source",
            AttributeValue::S("evil.source".to_owned()),
        ),
        with(
            "contract-breaking detail holding U+FFFF",
            "detail",
            AttributeValue::S(format!(
                "{{\"eventId\":\"{}\",\"userId\":\"a\u{FFFF}b\"}}",
                breaking.event_id
            )),
        ),
        (
            "nothing but its key",
            bare,
            HashMap::from([("eventId".to_owned(), AttributeValue::S(bare.to_string()))]),
        ),
    ]
}

/// The local stack behind the strict layer, in a working directory of its
/// own (it keeps its development keys under `.local/` there).
struct Rig {
    stack: DevStack,
    names: Names,
    dynamodb: aws_sdk_dynamodb::Client,
    dir: std::path::PathBuf,
}

impl Rig {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique_prefix());
        std::fs::create_dir_all(&dir).expect("a working directory");
        std::env::set_current_dir(&dir).expect("into it");
        let names = Names::for_prefix(&unique_prefix()).expect("a valid prefix");
        let options = DevOptions {
            endpoint_url: Some(moto_endpoint().to_owned()),
            port: 0,
            strict: Some(StrictLimits::default()),
            sweep_interval: Duration::from_secs(2),
            ..DevOptions::default()
        };
        let stack = DevStack::start(names.clone(), options)
            .await
            .expect("the local stack starts behind the strict layer");
        let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk);
        Self {
            stack,
            names,
            dynamodb,
            dir,
        }
    }

    async fn sign_in(&self, http: &reqwest::Client, user: &str) {
        let mut identity = DevIdentity::new(user);
        identity.email = Some(format!("{user}@example.com"));
        let signer = load_or_create_signer().expect("the development signer");
        let token = signer
            .sign(&claims(DEV_PROJECT, &identity))
            .expect("signed");
        let response = http
            .post(self.stack.exchange_url())
            .bearer_auth(token)
            .send()
            .await
            .expect("the exchange answers");
        assert_eq!(response.status().as_u16(), 200);
    }

    async fn write(&self, what: &str, item: Item) {
        self.dynamodb
            .put_item()
            .table_name(self.names.outbox_table())
            .set_item(Some(item))
            .send()
            .await
            .unwrap_or_else(|e| panic!("writing the item with {what}: {e:?}"));
    }

    async fn has_signed_in(&self, user: &str) -> bool {
        self.dynamodb
            .get_item()
            .table_name(self.names.users_table())
            .key("userId", AttributeValue::S(user.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("get the user")
            .item
            .is_some()
    }

    /// The event ids of every DLQ message, as `outboxctl dlq list` shows
    /// them.
    async fn dlq_event_ids(&self) -> HashSet<String> {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_outboxctl"))
            .args(["dlq", "list", "--json", "--endpoint-url"])
            .args([&self.stack.endpoint, "--prefix", &self.names.prefix])
            .env_remove("AWS_PROFILE")
            .env_remove("DLQ_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .await
            .expect("outboxctl runs");
        assert!(output.status.success(), "{output:?}");
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        list["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["eventIds"].as_array().cloned().unwrap_or_default())
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect()
    }

    /// Keys of the items still in the pending index. Scanned, not read
    /// through the adapter: the sweep's reader skips an item it cannot
    /// decode, which is exactly what could be left behind.
    async fn pending_keys(&self) -> Vec<String> {
        self.dynamodb
            .scan()
            .table_name(self.names.outbox_table())
            .filter_expression("attribute_exists(pendingShard)")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("scan the outbox")
            .iter()
            .filter_map(|item| item.get("eventId")?.as_s().ok().cloned())
            .collect()
    }

    /// The DLQ message of `event_id` as SQS holds it: its size and letter.
    async fn letter_of(&self, event_id: EventId) -> (usize, serde_json::Value) {
        let sqs = aws_sdk_sqs::Client::new(&self.stack.sdk);
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&self.stack.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .expect("the DLQ answers");
            assert!(!received.messages().is_empty(), "no letter for {event_id}");
            let found = received.messages().iter().find_map(|message| {
                let body = message.body()?;
                let letter: serde_json::Value = serde_json::from_str(body).ok()?;
                (letter["eventId"] == event_id.to_string()).then_some((body.len(), letter))
            });
            if let Some(found) = found {
                return found;
            }
        }
    }

    async fn stop(self) {
        self.stack.stop().await.expect("the stack stops");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `still` until it finds nothing left, failing with `what` after the deadline.
async fn eventually<F: Future<Output = Vec<String>>>(what: &str, mut still: impl FnMut() -> F) {
    let started = Instant::now();
    loop {
        let left = still().await;
        if left.is_empty() {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{what}: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn eight_malformed_items_among_twenty_sign_ins_are_dead_lettered_and_every_user_arrives() {
    let rig = Rig::start().await;
    let http = reqwest::Client::new();
    let malformed = malformed_items();
    let mut bad = malformed.iter();
    for i in 0..20 {
        rig.sign_in(&http, &format!("hostile-{i}")).await;
        if i % 2 == 1
            && let Some((what, _, item)) = bad.next()
        {
            rig.write(what, item.clone()).await;
        }
    }
    assert!(bad.next().is_none(), "every bad item was written");
    // Near DynamoDB's 400 KB item limit, over the DLQ's 256 KiB.
    let (large, mut large_item) = valid_item("bad-large");
    let padding = "x".repeat(390 * 1024);
    let detail = format!(
        "{{\"eventId\":\"{}\",\"padding\":\"{padding}\"}}",
        large.event_id
    );
    large_item.insert("detail".to_owned(), AttributeValue::S(detail));
    rig.write("390 KB", large_item).await;

    eventually("not in the Users table", || async {
        let mut missing = Vec::new();
        for user in (0..20).map(|i| format!("hostile-{i}")) {
            if !rig.has_signed_in(&user).await {
                missing.push(user);
            }
        }
        missing
    })
    .await;
    let wanted: Vec<(String, &str)> = malformed
        .iter()
        .map(|(what, key, _)| (key.to_string(), *what))
        .chain([(large.event_id.to_string(), "390 KB")])
        .collect();
    eventually("not in the DLQ by key", || async {
        let listed = rig.dlq_event_ids().await;
        wanted
            .iter()
            .filter(|(key, _)| !listed.contains(key))
            .map(|(_, what)| (*what).to_owned())
            .collect()
    })
    .await;
    let pending = rig.pending_keys().await;
    assert!(pending.is_empty(), "still pending: {pending:?}");

    let (bytes, letter) = rig.letter_of(large.event_id).await;
    assert!(bytes <= 262_144, "{bytes} bytes");
    assert!(
        letter["cut"]
            .as_str()
            .is_some_and(|note| note.contains("outbox item")),
        "the letter says it was cut: {}",
        letter["cut"]
    );
    rig.stop().await;
}
