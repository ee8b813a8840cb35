//! `outboxctl dlq`, `redrive` and `outbox` as the on-call runs them: the
//! real binary against a fresh moto stack, with the DLQ seeded with one
//! message of every shape plus one malformed message.

use std::collections::{HashMap, HashSet};
use std::process::{Output, Stdio};
use std::time::Duration;

use auth_events_core::contract::{Email, EventId, Timestamp, UserAction, UserEvent, UserId};
use auth_events_core::dead_letter::{DeadLetterKind, FailureStage, RelayDeadLetter, codes};
use auth_events_core::outbox::{DEFAULT_TTL, OutboxRecord};
use auth_events_core::ports::{DeadLetterSink, OutboxStore};
use auth_events_core::retry::FullJitter;
use auth_events_tests::{Stack, moto_endpoint, spawn_stack};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use serde_json::{Value, json};

const MALFORMED: &str = "{\"this is\": not json";

/// Runs outboxctl against `prefix` on the shared moto server, with the
/// resource variables of the caller's shell removed.
async fn outboxctl_at(prefix: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_outboxctl"))
        .args(args)
        .args(["--endpoint-url", moto_endpoint(), "--prefix", prefix])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AUTH_EVENTS_PREFIX")
        .env_remove("DLQ_URL")
        .env_remove("OUTBOX_TABLE")
        .env_remove("EVENT_BUS_NAME")
        .env_remove("RUST_LOG")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("outboxctl runs")
}

async fn outboxctl(stack: &Stack, args: &[&str]) -> Output {
    outboxctl_at(&stack.names.prefix, args).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn event(user: &str, at: Timestamp) -> UserEvent {
    UserEvent::new(
        UserAction::SignedIn,
        UserId::parse(user).expect("valid"),
        Email::parse(format!("{user}@example.com")).expect("valid"),
        at,
    )
}

fn event_id(event: &UserEvent) -> EventId {
    event.detail.event_id.expect("minted")
}

fn envelope(event: &UserEvent) -> Value {
    json!({
        "version": "0",
        "id": uuid_like(),
        "detail-type": event.detail_type(),
        "source": event.source(),
        "account": "123456789012",
        "time": event.detail.timestamp.to_string(),
        "region": "us-east-1",
        "resources": [],
        "detail": serde_json::to_value(&event.detail).expect("serialises"),
    })
}

fn uuid_like() -> String {
    EventId::new().to_string()
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("valid attribute")
}

async fn send(stack: &Stack, body: &str, attributes: &[(&str, &str)]) {
    let mut request = stack
        .sqs
        .send_message()
        .queue_url(&stack.dlq_url)
        .message_body(body);
    for (name, value) in attributes {
        request = request.message_attributes(*name, string_attribute(value));
    }
    request.send().await.expect("message sent");
}

/// The four events behind the seeded messages.
#[derive(Debug)]
struct Seeded {
    relay: EventId,
    window: EventId,
    bus: EventId,
    lambda: EventId,
}

impl Seeded {
    fn all(&self) -> HashSet<String> {
        [self.relay, self.window, self.bus, self.lambda]
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// One message of every shape plus a malformed one:
/// - a relay dead letter whose outbox item is still pending;
/// - a stream mapping on-failure record whose arrival window (two hours
///   ago) covers one pending outbox item;
/// - an EventBridge target-DLQ envelope;
/// - a Lambda async on-failure record.
async fn seed(stack: &Stack) -> Seeded {
    let outbox = stack.outbox();
    let now = Timestamp::now();

    let relay_event = event("relay-user", now);
    let relay_record = OutboxRecord::new(&relay_event, now, DEFAULT_TTL, None);
    outbox.insert(&relay_record).await.expect("inserted");
    stack
        .dead_letters()
        .send(&RelayDeadLetter {
            kind: DeadLetterKind::Relay,
            event_id: Some(relay_record.event_id),
            entry: Some(relay_record.bus_entry()),
            raw_image: None,
            stage: FailureStage::Publish,
            error_code: codes::RETRIES_EXHAUSTED.to_owned(),
            message: "still failing after 5 invocations, last error ThrottlingException".to_owned(),
            attempts: 5,
            first_failure_at: now,
            last_failure_at: now,
            sequence_number: Some("4100000000000000000001".to_owned()),
            cut: None,
        })
        .await
        .expect("dead letter sent");

    let two_hours_ago = Timestamp::from_datetime(now.as_datetime() - chrono::Duration::hours(2));
    let window_event = event("window-user", two_hours_ago);
    let window_record = OutboxRecord::new(&window_event, two_hours_ago, DEFAULT_TTL, None);
    outbox.insert(&window_record).await.expect("inserted");
    let arrival = |millis| {
        Timestamp::from_datetime(
            two_hours_ago.as_datetime() + chrono::Duration::milliseconds(millis),
        )
        .to_string()
    };
    let on_failure = json!({
        "requestContext": {
            "requestId": "5b7c2b5e-6f0a-4f3e-9d0f-2f1f6b1f4a11",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:outbox-relay",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": now.to_string(),
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001700000000000-abcdef01",
            "startSequenceNumber": "4200000000000000000001",
            "endSequenceNumber": "4200000000000000000001",
            "approximateArrivalOfFirstRecord": arrival(200),
            "approximateArrivalOfLastRecord": arrival(900),
            "batchSize": 1,
            "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/outbox/stream/2026-01-01T00:00:00.000"
        }
    });
    send(stack, &on_failure.to_string(), &[]).await;

    let bus_event = event("bus-user", now);
    send(
        stack,
        &envelope(&bus_event).to_string(),
        &[
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            ("ERROR_MESSAGE", "Unable to invoke the target"),
            (
                "RULE_ARN",
                "arn:aws:events:us-east-1:123456789012:rule/bus/user-signed-in",
            ),
            (
                "TARGET_ARN",
                "arn:aws:lambda:us-east-1:123456789012:function:user-profile",
            ),
        ],
    )
    .await;

    let lambda_event = event("lambda-user", now);
    let async_record = json!({
        "version": "1.0",
        "timestamp": now.to_string(),
        "requestContext": {
            "requestId": "0f2a3a4c-1111-4a5b-9c8d-7e6f5a4b3c2d",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:user-profile:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": envelope(&lambda_event),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "StoreUnavailable", "errorMessage": "the Users table could not be written"}
    });
    send(stack, &async_record.to_string(), &[]).await;

    send(stack, MALFORMED, &[]).await;

    Seeded {
        relay: relay_record.event_id,
        window: window_record.event_id,
        bus: event_id(&bus_event),
        lambda: event_id(&lambda_event),
    }
}

/// The DLQ's (exact, on moto) visible and in-flight counters.
async fn dlq_counts(stack: &Stack) -> (u64, u64) {
    let output = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.dlq_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes");
    let value = |name| {
        output
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        value(QueueAttributeName::ApproximateNumberOfMessages),
        value(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every body left in the DLQ (consumes their visibility; call last).
async fn dlq_bodies(stack: &Stack) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let output = stack
            .sqs
            .receive_message()
            .queue_url(&stack.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if output.messages().is_empty() {
            return bodies;
        }
        bodies.extend(
            output
                .messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
}

/// `detail.eventId` of every event the rule delivered to its target queue,
/// waiting up to `deadline` for `expected` of them.
async fn delivered(stack: &Stack, expected: usize, deadline: Duration) -> Vec<String> {
    stack
        .drain(&stack.target_queue_url, expected, deadline)
        .await
        .iter()
        .map(|body| {
            let envelope: Value = serde_json::from_str(body).expect("an EventBridge envelope");
            envelope["detail"]["eventId"]
                .as_str()
                .expect("eventId")
                .to_owned()
        })
        .collect()
}

/// Nothing more arrives on the target queue within a few seconds.
async fn nothing_more_delivered(stack: &Stack) {
    let extra = delivered(stack, 1, Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "unexpected deliveries: {extra:?}");
}

async fn is_pending(stack: &Stack, id: EventId) -> bool {
    stack
        .outbox()
        .get(id)
        .await
        .expect("read")
        .expect("item exists")
        .is_pending()
}

#[tokio::test]
async fn stats_counts_every_shape_and_list_and_show_leave_every_message_in_place() {
    let stack = spawn_stack().await;
    let seeded = seed(&stack).await;

    let stats = json_of(&outboxctl(&stack, &["dlq", "stats", "--json"]).await);
    assert_eq!(stats["messages"], 5, "{stats}");
    for kind in [
        "relay",
        "stream-batch",
        "bus-event",
        "lambda-async",
        "unreadable",
    ] {
        assert_eq!(stats["byKind"][kind], 1, "{kind}: {stats}");
    }
    for code in [
        codes::RETRIES_EXHAUSTED,
        "RetryAttemptsExhausted",
        "SDK_CLIENT_ERROR",
        "RetriesExhausted",
        "unreadable",
    ] {
        assert_eq!(stats["byErrorCode"][code], 1, "{code}: {stats}");
    }
    assert!(stats["oldestAgeSeconds"].as_u64().is_some(), "{stats}");
    assert_eq!(dlq_counts(&stack).await, (5, 0), "stats consumed nothing");

    let list = json_of(&outboxctl(&stack, &["dlq", "list", "--json"]).await);
    let messages = list["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 5, "{list}");
    assert_eq!(
        dlq_counts(&stack).await,
        (5, 0),
        "every message is visible again right after list"
    );
    let listed_events: HashSet<String> = messages
        .iter()
        .flat_map(|m| m["eventIds"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        listed_events,
        [seeded.relay, seeded.bus, seeded.lambda]
            .iter()
            .map(ToString::to_string)
            .collect()
    );

    let relay_only =
        json_of(&outboxctl(&stack, &["dlq", "list", "--kind", "relay", "--json"]).await);
    assert_eq!(relay_only["matching"], 1, "{relay_only}");
    let by_error =
        json_of(&outboxctl(&stack, &["dlq", "list", "--error", "unreadable", "--json"]).await);
    assert_eq!(by_error["matching"], 1, "{by_error}");

    let human = outboxctl(&stack, &["dlq", "list"]).await;
    assert!(human.status.success(), "{human:?}");
    for message in messages {
        let id = message["messageId"].as_str().expect("id");
        assert!(
            stdout(&human).contains(id),
            "{id} missing from:\n{}",
            stdout(&human)
        );
    }

    let relay_id = messages
        .iter()
        .find(|m| m["kind"] == "relay")
        .and_then(|m| m["messageId"].as_str())
        .expect("a relay message");
    let show = outboxctl(&stack, &["dlq", "show", relay_id, "--json"]).await;
    let shown = json_of(&show);
    assert_eq!(
        shown["outbox"][0]["eventId"],
        seeded.relay.to_string(),
        "{shown}"
    );
    assert_eq!(shown["outbox"][0]["state"], "pending", "{shown}");
    assert!(
        !stdout(&show).contains("@example.com"),
        "an e-mail address in clear: {}",
        stdout(&show)
    );
    assert_eq!(
        dlq_counts(&stack).await,
        (5, 0),
        "show stops reading once it finds the message, and releases all it read"
    );

    let window_id = messages
        .iter()
        .find(|m| m["kind"] == "stream-batch")
        .and_then(|m| m["messageId"].as_str())
        .expect("a stream-batch message");
    let window = json_of(&outboxctl(&stack, &["dlq", "show", window_id, "--json"]).await);
    assert_eq!(
        window["outbox"][0]["eventId"],
        seeded.window.to_string(),
        "{window}"
    );

    let human_show = outboxctl(&stack, &["dlq", "show", window_id]).await;
    assert!(human_show.status.success(), "{human_show:?}");
    assert!(stdout(&human_show).contains(&seeded.window.to_string()));

    let after = json_of(&outboxctl(&stack, &["dlq", "stats", "--json"]).await);
    assert_eq!(after["messages"], 5, "{after}");
    assert_eq!(dlq_counts(&stack).await, (5, 0));
}

#[tokio::test]
async fn dry_run_changes_nothing_and_says_what_it_would_do() {
    let stack = spawn_stack().await;
    let seeded = seed(&stack).await;

    let output = outboxctl(&stack, &["redrive", "--dry-run"]).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "the malformed one would be kept: {output:?}"
    );
    let text = stdout(&output);
    assert_eq!(
        text.matches("would publish").count(),
        5,
        "4 lines and the summary:\n{text}"
    );
    for id in seeded.all() {
        assert!(text.contains(&id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("unreadable"), "{text}");
    assert!(text.contains("nothing changed"), "{text}");

    assert_eq!(dlq_counts(&stack).await, (5, 0));
    nothing_more_delivered(&stack).await;
    assert!(is_pending(&stack, seeded.relay).await);
    assert!(is_pending(&stack, seeded.window).await);
}

#[tokio::test]
async fn redrive_publishes_each_event_once_deletes_the_handled_and_keeps_the_malformed() {
    let stack = spawn_stack().await;
    let seeded = seed(&stack).await;

    let output = outboxctl(&stack, &["redrive", "--yes"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains("4 published (4 events), 0 kept, 0 skipped, 1 unreadable"),
        "{text}"
    );
    assert!(
        text.contains("not JSON"),
        "the malformed message is reported:\n{text}"
    );

    let mut events = delivered(&stack, 4, Duration::from_secs(20)).await;
    nothing_more_delivered(&stack).await;
    events.sort();
    let mut expected: Vec<String> = seeded.all().into_iter().collect();
    expected.sort();
    assert_eq!(events, expected, "each event exactly once");

    assert!(!is_pending(&stack, seeded.relay).await, "marked published");
    assert!(!is_pending(&stack, seeded.window).await, "marked published");

    let second = outboxctl(&stack, &["redrive", "--yes"]).await;
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        stdout(&second).contains("0 published (0 events), 0 kept, 0 skipped, 1 unreadable"),
        "{}",
        stdout(&second)
    );
    nothing_more_delivered(&stack).await;

    assert_eq!(dlq_bodies(&stack).await, [MALFORMED]);
}

#[tokio::test]
async fn two_redrives_at_once_lose_nothing_publish_at_most_twice_and_the_users_converge() {
    let stack = spawn_stack().await;
    let seeded = seed(&stack).await;
    // Enough messages that the two runs' receives interleave.
    let mut expected = seeded.all();
    for i in 0..30 {
        let extra = event(&format!("crowd-{i}"), Timestamp::now());
        expected.insert(event_id(&extra).to_string());
        send(&stack, &envelope(&extra).to_string(), &[]).await;
    }

    let (first, second) = tokio::join!(
        outboxctl(&stack, &["redrive", "--yes", "--json"]),
        outboxctl(&stack, &["redrive", "--yes", "--json"]),
    );
    for output in [&first, &second] {
        assert_ne!(output.status.code(), Some(2), "{output:?}");
        let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(document["summary"]["kept"], 0, "{document}");
    }
    // A message one run held while the other looked for it is still in
    // the DLQ (reported as not received): a later redrive takes it.
    let last = outboxctl(&stack, &["redrive", "--yes"]).await;
    assert_eq!(last.status.code(), Some(1), "{last:?}");

    let bodies = stack
        .drain(
            &stack.target_queue_url,
            2 * expected.len(),
            Duration::from_secs(5),
        )
        .await;
    let mut times: HashMap<String, usize> = HashMap::new();
    for body in &bodies {
        let envelope: Value = serde_json::from_str(body).expect("envelope");
        let id = envelope["detail"]["eventId"].as_str().expect("id");
        *times.entry(id.to_owned()).or_default() += 1;
    }
    assert_eq!(
        times.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "every event published, nothing else"
    );
    assert!(times.values().all(|&n| n <= 2), "{times:?}");
    assert_eq!(
        dlq_bodies(&stack).await,
        [MALFORMED],
        "only the malformed one stays"
    );

    // The consumer deduplicates on eventId: every user signed in once.
    let handler = user_profile::Handler::new(
        stack.profile_store(),
        FullJitter::new(Duration::from_millis(10), Duration::from_millis(200)).with_max_times(5),
    );
    for body in &bodies {
        let envelope: user_profile::Envelope = serde_json::from_str(body).expect("envelope");
        handler.process(&envelope).await.expect("applied");
    }
    let users = stack.scan(&stack.names.users_table()).await;
    assert_eq!(users.len(), expected.len());
    for user in users {
        assert_eq!(
            user["signInCount"].as_n().map(String::as_str),
            Ok("1"),
            "{user:?}"
        );
    }
}

#[tokio::test]
async fn more_than_ten_messages_without_yes_are_refused_when_stdin_is_not_a_terminal() {
    let stack = spawn_stack().await;
    for i in 0..11 {
        let body = envelope(&event(&format!("user-{i}"), Timestamp::now())).to_string();
        send(&stack, &body, &[]).await;
    }
    let output = outboxctl(&stack, &["redrive"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = stderr(&output);
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(
        text.contains("--yes") && text.contains("11 messages"),
        "{text}"
    );
    assert_eq!(dlq_counts(&stack).await, (11, 0), "nothing consumed");
    nothing_more_delivered(&stack).await;

    let limited = outboxctl(&stack, &["redrive", "--max", "3", "--rate", "20"]).await;
    assert!(limited.status.success(), "{limited:?}");
    assert!(
        stdout(&limited).contains("3 published (3 events), 0 kept, 8 skipped, 0 unreadable"),
        "{}",
        stdout(&limited)
    );
    assert_eq!(delivered(&stack, 3, Duration::from_secs(20)).await.len(), 3);
}

#[tokio::test]
async fn kind_and_since_select_what_is_redriven() {
    let stack = spawn_stack().await;
    let seeded = seed(&stack).await;
    let output = outboxctl(&stack, &["redrive", "--kind", "bus-event", "--since", "1h"]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("1 published (1 events), 0 kept, 4 skipped, 0 unreadable"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        delivered(&stack, 1, Duration::from_secs(20)).await,
        [seeded.bus.to_string()]
    );
    assert_eq!(dlq_counts(&stack).await, (4, 0));
}

#[tokio::test]
async fn outbox_pending_lists_and_sweep_publishes_through_the_relay_engine() {
    let stack = spawn_stack().await;
    let ten_minutes_ago =
        Timestamp::from_datetime(Timestamp::now().as_datetime() - chrono::Duration::minutes(10));
    let mut ids = HashSet::new();
    for user in ["ann", "bob"] {
        let record = OutboxRecord::new(
            &event(user, ten_minutes_ago),
            ten_minutes_ago,
            DEFAULT_TTL,
            None,
        );
        stack.outbox().insert(&record).await.expect("inserted");
        ids.insert(record.event_id.to_string());
    }
    let pending = json_of(
        &outboxctl(
            &stack,
            &["outbox", "pending", "--older-than", "5m", "--json"],
        )
        .await,
    );
    assert_eq!(pending["count"], 2, "{pending}");
    let younger = json_of(
        &outboxctl(
            &stack,
            &["outbox", "pending", "--older-than", "1h", "--json"],
        )
        .await,
    );
    assert_eq!(younger["count"], 0, "{younger}");

    let sweep = json_of(&outboxctl(&stack, &["outbox", "sweep", "--json"]).await);
    assert_eq!(sweep["published"], 2, "{sweep}");
    let published: HashSet<String> = delivered(&stack, 2, Duration::from_secs(20))
        .await
        .into_iter()
        .collect();
    assert_eq!(published, ids);
    let after = json_of(&outboxctl(&stack, &["outbox", "pending", "--json"]).await);
    assert_eq!(after["count"], 0, "{after}");
}

#[tokio::test]
async fn a_missing_queue_or_table_gets_one_line_naming_it() {
    // Nothing exists under this prefix.
    let prefix = auth_events_tests::unique_prefix();
    let dlq = outboxctl_at(&prefix, &["dlq", "stats"]).await;
    assert_eq!(dlq.status.code(), Some(2), "{dlq:?}");
    let text = stderr(&dlq);
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("{prefix}auth-events-dlq")) && text.contains("--dlq-url"),
        "{text}"
    );

    let table = outboxctl_at(&prefix, &["outbox", "pending"]).await;
    assert_eq!(table.status.code(), Some(2), "{table:?}");
    let text = stderr(&table);
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("{prefix}outbox")) && text.contains("--outbox-table"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_arguments_give_one_line_naming_the_fix() {
    for (args, expected) in [
        (&["redrive", "--rate", "0"][..], "--rate 5"),
        (&["redrive", "--kind", "poison"][..], "stream-batch"),
        (&["redrive", "--since", "5x"][..], "e.g. 30s"),
        (&["redrive", "--max", "0"][..], "at least 1"),
        (
            &["outbox", "pending", "--older-than", "soon"][..],
            "e.g. 30s",
        ),
        (&["dlq", "list", "--kind", "nope"][..], "possible values"),
    ] {
        let output = outboxctl_at("unused-", args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let text = stderr(&output);
        assert_eq!(text.trim_end().lines().count(), 1, "{args:?}: {text}");
        assert!(text.starts_with("error: "), "{args:?}: {text}");
        assert!(
            text.contains(expected),
            "{args:?}: {expected:?} missing from {text}"
        );
    }
}
