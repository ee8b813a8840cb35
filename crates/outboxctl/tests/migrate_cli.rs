//! `outboxctl migrate` as an operator runs it.

use std::process::{Command, Output};

use auth_events_tests::{moto_endpoint, unique_prefix};

fn outboxctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outboxctl"))
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("outboxctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn migrate_creates_the_tables_only_and_a_second_run_says_nothing_to_do() {
    let prefix = unique_prefix();
    let args = [
        "migrate",
        "--endpoint-url",
        moto_endpoint(),
        "--prefix",
        &prefix,
    ];
    let first = outboxctl(&args);
    assert!(first.status.success(), "{first:?}");
    let text = stdout(&first);
    for expected in [
        "created table",
        "outbox",
        "users",
        "processed-events",
        "enabled TTL",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(
        !text.contains("event bus"),
        "the bus and queues are Terraform's (or the local stack's), not outboxctl's:\n{text}"
    );
    let second = outboxctl(&args);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout(&second).starts_with("nothing to do"),
        "{}",
        stdout(&second)
    );
}

#[test]
fn an_unreachable_endpoint_gives_one_line_naming_the_problem_and_the_fix() {
    let output = outboxctl(&[
        "migrate",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--prefix",
        "x-",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("--endpoint-url"), "{stderr}");
}

#[test]
fn an_invalid_prefix_gives_one_line_naming_the_fix() {
    let output = outboxctl(&[
        "migrate",
        "--endpoint-url",
        moto_endpoint(),
        "--prefix",
        "bad prefix",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("invalid prefix") && stderr.contains("--prefix"),
        "{stderr}"
    );
}
