//! The strict AWS layer refuses each thing it claims to, the way AWS does
//! (status and code as the SDK reports them), and lets everything else
//! through to moto: the tests that rely on it cannot pass by accident.

use auth_events_core::contract::{EventId, Timestamp};
use auth_events_core::dead_letter::{DeadLetterKind, FailureStage, RelayDeadLetter, codes};
use auth_events_core::ports::DeadLetterSink;
use auth_events_tests::{Stack, spawn_strict_stack};
use aws_sdk_eventbridge::config::http::HttpResponse;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};
use local_stack::strict::StrictLimits;

/// What the SDK saw: success, or the HTTP status and the error code.
type Outcome = Result<(), (u16, String)>;

fn outcome<T, E: ProvideErrorMetadata>(result: Result<T, SdkError<E, HttpResponse>>) -> Outcome {
    result.map(|_| ()).map_err(|error| {
        let status = error.raw_response().map_or(0, |r| r.status().as_u16());
        (status, error.code().unwrap_or("no code").to_owned())
    })
}

fn refused(code: &str) -> Outcome {
    Err((400, code.to_owned()))
}

const SOURCE: &str = "interview-companion.auth";
const DETAIL_TYPE: &str = "test.strict";

/// An entry of exactly `size` bytes by EventBridge's formula.
fn entry_of_size(
    stack: &Stack,
    size: usize,
    trace_header: Option<String>,
) -> PutEventsRequestEntry {
    let padding = size - SOURCE.len() - DETAIL_TYPE.len() - r#"{"p":""}"#.len();
    PutEventsRequestEntry::builder()
        .event_bus_name(&stack.names.bus)
        .source(SOURCE)
        .detail_type(DETAIL_TYPE)
        .detail(format!(r#"{{"p":"{}"}}"#, "x".repeat(padding)))
        .set_trace_header(trace_header)
        .build()
}

async fn put(stack: &Stack, entries: Vec<PutEventsRequestEntry>) -> Outcome {
    outcome(
        stack
            .events
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await,
    )
}

#[tokio::test]
async fn put_events_past_any_aws_limit_is_refused_whole_and_within_them_reaches_moto() {
    // moto refuses more than 10 entries itself; a lower count shows that
    // the layer's own check refuses.
    let stack = spawn_strict_stack(StrictLimits {
        put_events_max_entries: 5,
        put_events_max_request_bytes: 2_000,
        ..StrictLimits::default()
    })
    .await;
    let small = || entry_of_size(&stack, 100, None);

    assert_eq!(put(&stack, (0..5).map(|_| small()).collect()).await, Ok(()));
    assert_eq!(
        put(&stack, (0..6).map(|_| small()).collect()).await,
        refused("ValidationException"),
        "one entry over the count"
    );

    let sized = |sizes: [usize; 2]| sizes.map(|size| entry_of_size(&stack, size, None)).to_vec();
    assert_eq!(put(&stack, sized([1_000, 1_000])).await, Ok(()));
    assert_eq!(
        put(&stack, sized([1_000, 1_001])).await,
        refused("ValidationException"),
        "2,001 bytes of entries"
    );

    let traced = |header: String| vec![small(), entry_of_size(&stack, 100, Some(header))];
    assert_eq!(put(&stack, traced("é".repeat(500))).await, Ok(()));
    for (header, what) in [
        (String::new(), "empty"),
        ("a".repeat(501), "501 characters"),
    ] {
        assert_eq!(
            put(&stack, traced(header)).await,
            refused("ValidationException"),
            "a {what} trace header"
        );
    }
}

/// A queue of SQS's smallest `MaximumMessageSize`, 1,024 bytes, named
/// after the stack; made again under the same URL when called again.
async fn small_queue(stack: &Stack) -> String {
    stack
        .sqs
        .create_queue()
        .queue_name(format!("{}strict", stack.names.prefix))
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .expect("queue created")
        .queue_url
        .expect("a queue URL")
}

async fn send_body(stack: &Stack, queue_url: &str, body: String) -> Outcome {
    outcome(
        stack
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await,
    )
}

#[tokio::test]
async fn the_layer_reads_a_queues_limit_again_when_it_changes_or_the_queue_is_made_again() {
    let stack = spawn_strict_stack(StrictLimits::default()).await;
    let queue_url = small_queue(&stack).await;
    // 1,025 bytes in 513 characters: moto compares characters and would
    // accept it, so only the layer's reading of the limit can refuse it.
    let over = || format!("{}x", "é".repeat(512));
    assert_eq!(
        send_body(&stack, &queue_url, over()).await,
        refused("InvalidParameterValue")
    );

    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::MaximumMessageSize, "2048")
        .send()
        .await
        .expect("attributes set");
    assert_eq!(
        send_body(&stack, &queue_url, over()).await,
        Ok(()),
        "after SetQueueAttributes"
    );

    stack
        .sqs
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await
        .expect("queue deleted");
    assert_eq!(small_queue(&stack).await, queue_url, "the same URL");
    assert_eq!(
        send_body(&stack, &queue_url, over()).await,
        refused("InvalidParameterValue"),
        "after the queue is made again"
    );
}

#[tokio::test]
async fn sqs_sends_aws_would_refuse_are_refused_with_its_codes_against_the_queues_live_limit() {
    let stack = spawn_strict_stack(StrictLimits {
        sqs_max_batch_bytes: 1_500,
        ..StrictLimits::default()
    })
    .await;
    let queue_url = small_queue(&stack).await;
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("type set")
    };
    let send = |body: String, attribute: Option<MessageAttributeValue>| {
        let request = stack
            .sqs
            .send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .set_message_attributes(attribute.map(|a| [("kind".to_owned(), a)].into()));
        async { outcome(request.send().await) }
    };

    // SQS counts bytes; moto counts characters, so these are the layer's.
    assert_eq!(send("é".repeat(512), None).await, Ok(()));
    assert_eq!(
        send(format!("{}x", "é".repeat(512)), None).await,
        refused("InvalidParameterValue")
    );
    assert_eq!(
        send("a\u{0}b".to_owned(), None).await,
        refused("InvalidMessageContents")
    );
    assert_eq!(
        send("ok".to_owned(), Some(attribute("\u{1b}[31m"))).await,
        refused("InvalidMessageContents"),
        "a control character in a string attribute"
    );
    // 1,000 + "kind" + "String" + 14 = 1,024; one more is over.
    let body = "x".repeat(1_000);
    assert_eq!(
        send(body.clone(), Some(attribute(&"v".repeat(14)))).await,
        Ok(())
    );
    assert_eq!(
        send(body, Some(attribute(&"v".repeat(15)))).await,
        refused("InvalidParameterValue"),
        "attributes count towards the size"
    );

    let batch = |bodies: &[String]| {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(id, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body set")
            })
            .collect();
        let request = stack
            .sqs
            .send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries));
        async { outcome(request.send().await) }
    };
    assert_eq!(batch(&["ok".to_owned(), "fine".to_owned()]).await, Ok(()));
    assert_eq!(
        batch(&["ok".to_owned(), "bad\u{8}".to_owned()]).await,
        refused("InvalidMessageContents")
    );
    assert_eq!(
        batch(&["x".repeat(800), "x".repeat(800)]).await,
        refused("BatchRequestTooLong")
    );
}

fn contract_breaking_letter(detail: &str) -> RelayDeadLetter {
    let now = Timestamp::now();
    RelayDeadLetter {
        kind: DeadLetterKind::Relay,
        event_id: Some(EventId::new()),
        entry: None,
        raw_image: Some(serde_json::json!({ "detail": { "S": detail } })),
        stage: FailureStage::Contract,
        error_code: codes::CONTRACT_INVALID.to_owned(),
        message: "detail is not the contract".to_owned(),
        attempts: 0,
        first_failure_at: now,
        last_failure_at: now,
        sequence_number: None,
        cut: None,
    }
}

/// The DLQ adapter's letters are ones SQS accepts whatever they carry: a
/// character SQS refuses is escaped (and reads back the same), a letter
/// over the DLQ's 256 KiB is cut to fit and says so.
#[tokio::test]
async fn relay_letters_with_refused_characters_or_over_the_queue_size_are_accepted() {
    let stack = spawn_strict_stack(StrictLimits::default()).await;
    let dlq = stack.dead_letters();
    let odd = contract_breaking_letter("{\"userId\":\"a\u{FFFF}b\"}");
    let large = contract_breaking_letter(&"x".repeat(390 * 1024));

    dlq.send(&odd)
        .await
        .expect("a letter holding U+FFFF is accepted");
    dlq.send(&large).await.expect("a 390 KB letter is accepted");

    let letters: Vec<RelayDeadLetter> = stack
        .drain(&stack.dlq_url, 2, std::time::Duration::from_secs(10))
        .await
        .iter()
        .map(|body| serde_json::from_str(body).expect("a relay letter"))
        .collect();
    assert_eq!(letters.len(), 2);
    let read = |id| {
        letters
            .iter()
            .find(|l| l.event_id == id)
            .expect("its letter")
    };
    assert_eq!(
        read(odd.event_id),
        &odd,
        "nothing of the odd letter is lost"
    );
    let cut = read(large.event_id);
    assert!(
        cut.cut.is_some(),
        "the large letter says it was cut: {:?}",
        cut.cut
    );
    assert_eq!(cut.error_code, codes::CONTRACT_INVALID);
}
