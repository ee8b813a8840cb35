//! Offline checks of `infra/terraform` that checkov cannot make: the tables
//! agree with `migrations/`, every failure path ends in the DLQ and every
//! alarm reaches someone, and each function's IAM policy names only what its
//! own code calls.
//!
//! Each check is a function of a directory returning its violations, so the
//! same check runs on the real stack (none) and on a temporary copy of it
//! with the `BREAKAGES` edits applied (exactly those breakages): a check that
//! cannot fail proves nothing. Each edit must find its text exactly once in
//! the real files, so one that no longer applies fails instead of testing
//! nothing.
//!
//! The checks read the HCL as written, never evaluate it: references are
//! compared as source text (`aws_sqs_queue.dlq.arn`), which is what a
//! reviewer reads and what Terraform resolves to the real ARN.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::iter::once;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use auth_events_aws::migrate::{KeyAttribute, TableMigration, desired_tables};
use auth_events_core::contract::SOURCE;
use auth_events_core::outbox::PENDING_INDEX;
use auth_exchange::credentials::USER_ID_TAG;
use hcl::format::{Format, Formatter};
use hcl::{Attribute, Block, Body, Expression, ObjectKey, TraversalOperator};
use outbox_relay::metrics::{NAMESPACE, OLDEST_PENDING_AGE};

/// Table names in Terraform are the logical names of `migrations/` behind
/// the deployment prefix.
const PREFIX: &str = "${var.prefix}";

const DLQ_ARN: &str = "aws_sqs_queue.dlq.arn";
const OUTBOX_ARN: &str = "aws_dynamodb_table.outbox.arn";
const OUTBOX_STREAM_ARN: &str = "aws_dynamodb_table.outbox.stream_arn";
const BUS_ARN: &str = "aws_cloudwatch_event_bus.auth.arn";
const KEY_ARN: &str = "aws_kms_key.events.arn";

/// The functions, by their Terraform names: each has a function, a role and
/// a policy document of that name.
const FUNCTIONS: [&str; 3] = ["auth_exchange", "outbox_relay", "user_profile"];

// --- reading HCL ---------------------------------------------------------------

/// The top-level blocks of every `.tf` file in one directory, in file-name
/// order so that violations are listed in a stable order.
#[derive(Debug)]
struct Terraform {
    blocks: Vec<Block>,
}

impl Terraform {
    fn load(dir: &Path) -> Self {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no .tf files in {}", dir.display());
        let blocks = files
            .iter()
            .flat_map(|file| {
                let text = std::fs::read_to_string(file)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
                hcl::parse(&text)
                    .unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()))
                    .into_blocks()
            })
            .collect();
        Self { blocks }
    }

    /// `<block_type> "<kind>" "<name>"` blocks (resources or data sources)
    /// as `(name, body)`.
    fn labelled<'a, 'k>(
        &'a self,
        block_type: &'k str,
        kind: &'k str,
    ) -> impl Iterator<Item = (&'a str, &'a Body)> + use<'a, 'k> {
        self.blocks
            .iter()
            .filter_map(move |block| match block.labels() {
                [label, name] if block.identifier() == block_type && label.as_str() == kind => {
                    Some((name.as_str(), block.body()))
                }
                _ => None,
            })
    }

    fn resources<'a, 'k>(
        &'a self,
        kind: &'k str,
    ) -> impl Iterator<Item = (&'a str, &'a Body)> + use<'a, 'k> {
        self.labelled("resource", kind)
    }

    fn resource(&self, kind: &str, name: &str) -> Option<&Body> {
        self.named("resource", kind, name)
    }

    fn data(&self, kind: &str, name: &str) -> Option<&Body> {
        self.named("data", kind, name)
    }

    fn named(&self, block_type: &str, kind: &str, name: &str) -> Option<&Body> {
        self.labelled(block_type, kind)
            .find_map(|(found, body)| (found == name).then_some(body))
    }

    /// A one-label block such as `variable "prefix"`.
    fn named_block(&self, block_type: &str, name: &str) -> Option<&Body> {
        self.blocks.iter().find_map(|block| match block.labels() {
            [label] if block.identifier() == block_type && label.as_str() == name => {
                Some(block.body())
            }
            _ => None,
        })
    }

    fn local(&self, name: &str) -> Option<&Expression> {
        self.blocks
            .iter()
            .filter(|block| block.identifier() == "locals")
            .find_map(|block| attr(block.body(), name))
    }

    /// Follows a `local.<name>` reference to its definition, once: this
    /// stack's locals name resources directly (`local.alarm_topics`).
    fn resolve<'a>(&'a self, expr: &'a Expression) -> &'a Expression {
        reference(expr)
            .and_then(|r| match r.names.as_slice() {
                [root, name] if root == "local" => self.local(name),
                _ => None,
            })
            .unwrap_or(expr)
    }

    /// Whether `reference` names a declared resource of `kind` and, for a
    /// `for_each` resource, one of its instance keys.
    fn declares(&self, kind: &str, reference: &Reference) -> bool {
        let [found_kind, name, ..] = reference.names.as_slice() else {
            return false;
        };
        let Some(body) = self.resource(kind, name).filter(|_| found_kind == kind) else {
            return false;
        };
        let instance_keys: Vec<String> = match attr(body, "for_each").map(|e| self.resolve(e)) {
            Some(Expression::Object(object)) => object.keys().map(key_text).collect(),
            _ => Vec::new(),
        };
        match &reference.key {
            Some(key) => instance_keys.contains(key),
            None => attr(body, "for_each").is_none(),
        }
    }
}

/// A reference such as `aws_cloudwatch_log_group.function["auth_exchange"].arn`:
/// its names (`aws_cloudwatch_log_group`, `function`, `arn`) and the
/// instance key of a `for_each` resource, if any.
#[derive(Debug)]
struct Reference {
    names: Vec<String>,
    key: Option<String>,
}

fn reference(expr: &Expression) -> Option<Reference> {
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    let mut names = vec![root.to_string()];
    let mut key = None;
    for operator in &traversal.operators {
        match operator {
            TraversalOperator::GetAttr(name) => names.push(name.to_string()),
            TraversalOperator::Index(Expression::String(index)) => key = Some(index.clone()),
            _ => return None,
        }
    }
    Some(Reference { names, key })
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(Attribute::expr)
}

fn blocks<'a, 'i>(
    body: &'a Body,
    identifier: &'i str,
) -> impl Iterator<Item = &'a Body> + use<'a, 'i> {
    body.blocks()
        .filter(move |block| block.identifier() == identifier)
        .map(Block::body)
}

/// The attribute at a path through nested blocks, e.g.
/// `destination_config.on_failure.destination_arn` (first block of each name).
fn at<'a>(body: &'a Body, path: &str) -> Option<&'a Expression> {
    match path.split_once('.') {
        Some((block, rest)) => at(blocks(body, block).next()?, rest),
        None => attr(body, path),
    }
}

/// An expression as source text a reader would compare: literals and
/// templates without their quotes (`${var.prefix}outbox`, `S`, `true`),
/// references as written, lists on one line (`["arm64"]`).
fn text(expr: &Expression) -> String {
    match expr {
        Expression::String(string) => string.clone(),
        Expression::TemplateExpr(template) => template.to_string(),
        other => other
            .format_string(&mut Formatter::builder().compact(true).build_vec())
            .expect("formatting an expression into memory cannot fail"),
    }
}

fn text_at(body: &Body, path: &str) -> Option<String> {
    at(body, path).map(text)
}

fn key_text(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Identifier(identifier) => identifier.to_string(),
        ObjectKey::Expression(expr) => text(expr),
        other => other
            .format_string(&mut Formatter::default())
            .expect("formatting a key into memory cannot fail"),
    }
}

/// The elements of a list; anything else (say, a reference to a list) as a
/// list of one.
fn elements(expr: &Expression) -> &[Expression] {
    match expr {
        Expression::Array(elements) => elements,
        other => std::slice::from_ref(other),
    }
}

fn elements_at<'a>(body: &'a Body, key: &str) -> &'a [Expression] {
    attr(body, key).map_or(&[], elements)
}

// --- 1. tables against migrations ---------------------------------------------

/// A table's shape as flat facts (`hash_key` → `eventId`,
/// `index pending-by-age range_key` → `createdAt`), so both sides compare
/// fact by fact and each difference names exactly what differs.
type Facts = BTreeMap<String, String>;

fn migration_facts(table: &TableMigration) -> Facts {
    let mut facts = Facts::new();
    key_facts(&mut facts, "", &table.hash_key, table.range_key.as_ref());
    for index in &table.global_secondary_indexes {
        let prefix = format!("index {} ", index.name);
        key_facts(
            &mut facts,
            &prefix,
            &index.hash_key,
            index.range_key.as_ref(),
        );
        facts.insert(format!("{prefix}projection"), index.projection.clone());
    }
    facts.extend(table.stream.clone().map(|view| ("stream".to_owned(), view)));
    facts.extend(
        table
            .ttl_attribute
            .clone()
            .map(|name| ("ttl".to_owned(), name)),
    );
    facts
}

/// The key names under `prefix`, and each key's type as an attribute:
/// Terraform declares every key attribute once, whichever index uses it.
fn key_facts(facts: &mut Facts, prefix: &str, hash: &KeyAttribute, range: Option<&KeyAttribute>) {
    facts.insert(format!("{prefix}hash_key"), hash.name.clone());
    if let Some(range) = range {
        facts.insert(format!("{prefix}range_key"), range.name.clone());
    }
    for key in once(hash).chain(range) {
        facts.insert(format!("attribute {}", key.name), key.kind.clone());
    }
}

fn terraform_facts(table: &Body) -> Facts {
    let enabled = |path| text_at(table, path).as_deref() == Some("true");
    let mut facts: Vec<(String, Option<String>)> = vec![
        ("hash_key".to_owned(), text_at(table, "hash_key")),
        ("range_key".to_owned(), text_at(table, "range_key")),
    ];
    // A disabled stream or TTL is no stream or TTL, whatever else it names.
    if enabled("stream_enabled") {
        facts.push(("stream".to_owned(), text_at(table, "stream_view_type")));
    }
    if enabled("ttl.enabled") {
        facts.push(("ttl".to_owned(), text_at(table, "ttl.attribute_name")));
    }
    for attribute in blocks(table, "attribute") {
        let name = text_at(attribute, "name").unwrap_or_default();
        facts.push((format!("attribute {name}"), text_at(attribute, "type")));
    }
    for index in blocks(table, "global_secondary_index") {
        let prefix = format!("index {} ", text_at(index, "name").unwrap_or_default());
        for (fact, key) in [
            ("hash_key", "hash_key"),
            ("range_key", "range_key"),
            ("projection", "projection_type"),
        ] {
            facts.push((format!("{prefix}{fact}"), text_at(index, key)));
        }
    }
    facts
        .into_iter()
        .filter_map(|(fact, value)| Some((fact, value?)))
        .collect()
}

fn shown(value: Option<&String>) -> &str {
    value.map_or("unset", String::as_str)
}

fn table_differences(table: &str, terraform: &Facts, wanted: &Facts) -> Vec<String> {
    let facts: BTreeSet<&String> = terraform.keys().chain(wanted.keys()).collect();
    facts
        .into_iter()
        .filter(|fact| terraform.get(*fact) != wanted.get(*fact))
        .map(|fact| {
            format!(
                "{table}: {fact} is {} in Terraform, {} in migrations",
                shown(terraform.get(fact)),
                shown(wanted.get(fact)),
            )
        })
        .collect()
}

fn table_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    let wanted = desired_tables().expect("the checked-in migrations parse");
    let mut violations = Vec::new();
    let mut declared = BTreeMap::new();
    for (name, body) in terraform.resources("aws_dynamodb_table") {
        let table_name = text_at(body, "name").unwrap_or_default();
        match table_name.strip_prefix(PREFIX) {
            Some(logical) if wanted.contains_key(logical) => {
                declared.insert(logical.to_owned(), body);
            }
            // The local stack is built from migrations/ alone, so a table
            // only Terraform knows would exist on AWS and nowhere else.
            _ => violations.push(format!(
                "aws_dynamodb_table.{name} is named {table_name:?}, which no migration defines"
            )),
        }
    }
    for (logical, migration) in &wanted {
        match declared.get(logical) {
            Some(body) => violations.extend(table_differences(
                logical,
                &terraform_facts(body),
                &migration_facts(migration),
            )),
            None => violations.push(format!(
                "{logical}: no aws_dynamodb_table is named \"{PREFIX}{logical}\""
            )),
        }
    }
    violations
}

// --- 2. queues, mappings, alarms ---------------------------------------------

/// What an attribute must hold.
#[derive(Clone, Copy)]
enum Want {
    /// This source text.
    Is(&'static str),
    /// Something real: not -1 (unlimited) and not `[]` (nobody).
    Set,
    /// A property only code can state, described for the message.
    Satisfies(fn(&Terraform, &Expression) -> bool, &'static str),
}

impl Want {
    fn accepts(self, terraform: &Terraform, expr: &Expression) -> bool {
        match self {
            Want::Is(wanted) => text(expr) == wanted,
            Want::Set => !matches!(text(expr).as_str(), "-1" | "[]"),
            Want::Satisfies(holds, _) => holds(terraform, expr),
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Is(wanted) => f.write_str(wanted),
            Want::Set => f.write_str("a value (not -1, not [])"),
            Want::Satisfies(_, description) => f.write_str(description),
        }
    }
}

struct Rule {
    path: &'static str,
    want: Want,
}

const fn is(path: &'static str, wanted: &'static str) -> Rule {
    Rule {
        path,
        want: Want::Is(wanted),
    }
}

const fn set(path: &'static str) -> Rule {
    Rule {
        path,
        want: Want::Set,
    }
}

/// Rules for the resources of one kind: every one of them, or (with
/// `select`) those whose attribute holds a reference, of which there must be
/// at least one.
struct Wiring {
    kind: &'static str,
    select: Option<(&'static str, &'static str)>,
    rules: &'static [Rule],
}

const WIRING: &[Wiring] = &[
    // The relay reports the failing record; bisecting isolates whatever it
    // could not classify, so one poison record never holds the shard. The
    // limits stop retries before the stream's 24 h retention drops the
    // batch silently: it lands in the DLQ, where redrive finds it.
    Wiring {
        kind: "aws_lambda_event_source_mapping",
        select: Some(("event_source_arn", OUTBOX_STREAM_ARN)),
        rules: &[
            is("function_name", "aws_lambda_function.outbox_relay.arn"),
            Rule {
                path: "filter_criteria.filter.pattern",
                want: Want::Satisfies(inserts_only, "a pattern matching only INSERT records"),
            },
            is("function_response_types", r#"["ReportBatchItemFailures"]"#),
            is("bisect_batch_on_function_error", "true"),
            set("maximum_retry_attempts"),
            set("maximum_record_age_in_seconds"),
            is("destination_config.on_failure.destination_arn", DLQ_ARN),
        ],
    },
    // An event EventBridge could not hand to the profile function.
    Wiring {
        kind: "aws_cloudwatch_event_target",
        select: Some(("rule", "aws_cloudwatch_event_rule.user_signed_in.name")),
        rules: &[
            is("arn", "aws_lambda_function.user_profile.arn"),
            set("retry_policy.maximum_retry_attempts"),
            set("retry_policy.maximum_event_age_in_seconds"),
            is("dead_letter_config.arn", DLQ_ARN),
        ],
    },
    // An event the profile function accepted but failed on, after retries.
    Wiring {
        kind: "aws_lambda_function_event_invoke_config",
        select: Some((
            "function_name",
            "aws_lambda_function.user_profile.function_name",
        )),
        rules: &[is("destination_config.on_failure.destination", DLQ_ARN)],
    },
    // Dead letters hold whole events, user emails included, and must
    // outlast a long weekend before someone redrives them.
    Wiring {
        kind: "aws_sqs_queue",
        select: None,
        rules: &[
            is("message_retention_seconds", "1209600"),
            set("kms_master_key_id"),
        ],
    },
    // An alarm that notifies nobody is a graph.
    Wiring {
        kind: "aws_cloudwatch_metric_alarm",
        select: None,
        rules: &[set("alarm_actions")],
    },
    Wiring {
        kind: "aws_cloudwatch_log_group",
        select: None,
        rules: &[set("retention_in_days")],
    },
    // Events carry users' e-mail addresses, on the bus and in its archive.
    Wiring {
        kind: "aws_cloudwatch_event_bus",
        select: None,
        rules: &[is("kms_key_identifier", KEY_ARN)],
    },
    Wiring {
        kind: "aws_cloudwatch_event_archive",
        select: None,
        rules: &[is("kms_key_identifier", KEY_ARN)],
    },
    Wiring {
        kind: "aws_lambda_function",
        select: None,
        rules: &[
            is("runtime", "provided.al2023"),
            is("architectures", r#"["arm64"]"#),
            Rule {
                path: "role",
                want: Want::Satisfies(names_a_role, "a declared aws_iam_role"),
            },
            is("logging_config.log_format", "JSON"),
            Rule {
                path: "logging_config.log_group",
                want: Want::Satisfies(names_a_log_group, "a declared aws_cloudwatch_log_group"),
            },
            is("tracing_config.mode", "Active"),
        ],
    },
];

/// The mapping's filter, written as `jsonencode({...})` or as a JSON string,
/// passes INSERT records only: publishing marks items (MODIFY) and TTL
/// deletes them (REMOVE), and neither should cost an invocation.
fn inserts_only(_: &Terraform, pattern: &Expression) -> bool {
    let json = match pattern {
        Expression::FuncCall(call) if call.name.name.as_str() == "jsonencode" => call
            .args
            .first()
            .and_then(|arg| serde_json::to_value(hcl::Value::from(arg.clone())).ok()),
        Expression::String(literal) => serde_json::from_str(literal).ok(),
        _ => None,
    };
    json.is_some_and(|json| json["eventName"] == serde_json::json!(["INSERT"]))
}

fn names_a_role(terraform: &Terraform, role: &Expression) -> bool {
    reference(role).is_some_and(|r| terraform.declares("aws_iam_role", &r))
}

fn names_a_log_group(terraform: &Terraform, group: &Expression) -> bool {
    reference(group).is_some_and(|r| terraform.declares("aws_cloudwatch_log_group", &r))
}

fn rule_violation(
    terraform: &Terraform,
    subject: &str,
    body: &Body,
    rule: &Rule,
) -> Option<String> {
    let value = at(body, rule.path).map(|expr| terraform.resolve(expr));
    if value.is_some_and(|expr| rule.want.accepts(terraform, expr)) {
        return None;
    }
    let actual = value.map_or_else(|| "unset".to_owned(), text);
    Some(format!(
        "{subject}: {} is {actual}, want {}",
        rule.path, rule.want
    ))
}

fn wiring_rule_violations(terraform: &Terraform, wiring: &Wiring) -> Vec<String> {
    let selected: Vec<(&str, &Body)> = terraform
        .resources(wiring.kind)
        .filter(|(_, body)| {
            wiring
                .select
                .is_none_or(|(key, wanted)| text_at(body, key).as_deref() == Some(wanted))
        })
        .collect();
    if let (Some((key, wanted)), true) = (wiring.select, selected.is_empty()) {
        return vec![format!("no {} has {key} = {wanted}", wiring.kind)];
    }
    selected
        .into_iter()
        .flat_map(|(name, body)| {
            let subject = format!("{}.{name}", wiring.kind);
            wiring
                .rules
                .iter()
                .filter_map(move |rule| rule_violation(terraform, &subject, body, rule))
        })
        .collect()
}

/// An alarm on-call needs: this metric, for this resource.
struct AlarmNeed {
    watches: &'static str,
    namespace: &'static str,
    metric: &'static str,
    dimension: Option<(&'static str, &'static str)>,
}

const ALARMS: &[AlarmNeed] = &[
    AlarmNeed {
        watches: "DLQ depth",
        namespace: "AWS/SQS",
        metric: "ApproximateNumberOfMessagesVisible",
        dimension: Some(("QueueName", "aws_sqs_queue.dlq.name")),
    },
    AlarmNeed {
        watches: "relay errors",
        namespace: "AWS/Lambda",
        metric: "Errors",
        dimension: Some((
            "FunctionName",
            "aws_lambda_function.outbox_relay.function_name",
        )),
    },
    AlarmNeed {
        watches: "relay iterator age",
        namespace: "AWS/Lambda",
        metric: "IteratorAge",
        dimension: Some((
            "FunctionName",
            "aws_lambda_function.outbox_relay.function_name",
        )),
    },
    // The metric the relay's sweep emits, named by the relay's own code.
    AlarmNeed {
        watches: "oldest pending outbox item",
        namespace: NAMESPACE,
        metric: OLDEST_PENDING_AGE,
        dimension: None,
    },
];

fn dimension(alarm: &Body, name: &str) -> Option<String> {
    let Some(Expression::Object(dimensions)) = attr(alarm, "dimensions") else {
        return None;
    };
    dimensions
        .iter()
        .find_map(|(key, value)| (key_text(key) == name).then(|| text(value)))
}

fn watches(alarm: &Body, need: &AlarmNeed) -> bool {
    text_at(alarm, "namespace").as_deref() == Some(need.namespace)
        && text_at(alarm, "metric_name").as_deref() == Some(need.metric)
        && need
            .dimension
            .is_none_or(|(name, value)| dimension(alarm, name).as_deref() == Some(value))
}

fn wiring_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    let rules = WIRING
        .iter()
        .flat_map(|wiring| wiring_rule_violations(&terraform, wiring));
    let alarms = ALARMS
        .iter()
        .filter(|need| {
            !terraform
                .resources("aws_cloudwatch_metric_alarm")
                .any(|(_, alarm)| watches(alarm, need))
        })
        .map(|need| {
            format!(
                "no aws_cloudwatch_metric_alarm watches {} ({} {})",
                need.watches, need.namespace, need.metric
            )
        });
    rules.chain(alarms).collect()
}

// --- 3. least privilege per function -------------------------------------------

/// `(action, resource)`, the resource as source text.
type Grant = (String, String);

/// Every action each function's code calls, on what: the whole of what its
/// policy may allow.
fn needs(function: &str) -> BTreeSet<Grant> {
    let pending_index = format!("${{{OUTBOX_ARN}}}/index/{PENDING_INDEX}");
    let own_log_streams = format!("${{aws_cloudwatch_log_group.function[\"{function}\"].arn}}:*");
    let own: Vec<(&[&str], &str)> = match function {
        "auth_exchange" => vec![
            (&["dynamodb:PutItem"], OUTBOX_ARN),
            // The fallback when the outbox write misses its budget.
            (&["events:PutEvents"], BUS_ARN),
            (
                &["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                "local.app_role_arn",
            ),
        ],
        "outbox_relay" => vec![
            (
                &[
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:DescribeStream",
                    "dynamodb:ListStreams",
                ],
                OUTBOX_STREAM_ARN,
            ),
            // Marking only: GetItem is outboxctl's, which is no Lambda.
            (&["dynamodb:UpdateItem"], OUTBOX_ARN),
            (&["dynamodb:Query"], &pending_index),
            (&["events:PutEvents"], BUS_ARN),
            (&["sqs:SendMessage"], DLQ_ARN),
        ],
        // One transaction, authorised per item action (crates/aws/src/
        // profile.rs): a Put on processed-events, an Update on users.
        "user_profile" => vec![
            (
                &["dynamodb:PutItem"],
                "aws_dynamodb_table.processed_events.arn",
            ),
            (&["dynamodb:UpdateItem"], "aws_dynamodb_table.users.arn"),
            // The async on-failure destination is written with the role.
            (&["sqs:SendMessage"], DLQ_ARN),
        ],
        other => panic!("no needs written down for {other}"),
    };
    let every_function: [(&[&str], &str); 3] = [
        (
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            &own_log_streams,
        ),
        // X-Ray's write actions take no resource-level permissions.
        (&["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        // Tables, stream, DLQ and environment are under the stack's key.
        (
            &["kms:Decrypt", "kms:GenerateDataKey"],
            "aws_kms_key.events.arn",
        ),
    ];
    own.into_iter()
        .chain(every_function)
        .flat_map(|(actions, resource)| {
            actions
                .iter()
                .map(move |action| ((*action).to_owned(), resource.to_owned()))
        })
        .collect()
}

/// The resource a grant's text names: `aws_dynamodb_table.outbox` for
/// `aws_dynamodb_table.outbox.stream_arn` or
/// `${aws_dynamodb_table.outbox.arn}/index/...`; none for `*`.
fn named_resource(resource: &str) -> Option<String> {
    let reference = resource.strip_prefix("${").unwrap_or(resource);
    let mut names = reference.splitn(3, '.');
    let (kind, name) = (names.next()?, names.next()?);
    Some(format!("{kind}.{name}"))
}

/// What other functions use and this one does not: its policy must not so
/// much as mention it.
fn foreign_resources(function: &str) -> BTreeSet<String> {
    let resources = |f: &str| -> BTreeSet<String> {
        needs(f)
            .into_iter()
            .filter_map(|(_, resource)| named_resource(&resource))
            .collect()
    };
    let own = resources(function);
    FUNCTIONS
        .into_iter()
        .filter(|other| *other != function)
        .flat_map(resources)
        .filter(|resource| !own.contains(resource))
        .collect()
}

/// Whether `text` refers to `resource` itself, not to a longer name that
/// starts the same (`aws_dynamodb_table.outbox_archive`, `data.aws_…`).
fn mentions(text: &str, resource: &str) -> bool {
    let continues_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(resource).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + resource.len()..].chars().next();
        !before.is_some_and(|c| continues_name(c) || c == '.') && !after.is_some_and(continues_name)
    })
}

/// IAM's wildcard match: `*` is any run of characters, `?` any one.
fn wildcard_match(pattern: &[u8], value: &[u8]) -> bool {
    match (pattern.split_first(), value.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            wildcard_match(rest, value)
                || value
                    .split_first()
                    .is_some_and(|(_, tail)| wildcard_match(pattern, tail))
        }
        (Some((p, rest)), Some((v, tail))) if *p == b'?' || p == v => wildcard_match(rest, tail),
        _ => false,
    }
}

/// A function's effective policy: its own document's statements and those
/// of the documents it merges, with `each.key` bound to the function (the
/// shared basics are one `for_each` document).
#[derive(Debug, Default)]
struct Policy {
    grants: BTreeSet<Grant>,
    /// Every merged document as source text, for `mentions`.
    text: String,
    problems: Vec<String>,
}

impl Policy {
    fn read(terraform: &Terraform, function: &str) -> Option<Self> {
        let document = terraform.data("aws_iam_policy_document", function)?;
        let mut policy = Policy::default();
        policy.merge(document, function);
        let merged = ["source_policy_documents", "override_policy_documents"]
            .into_iter()
            .flat_map(|key| elements_at(document, key));
        for source in merged {
            let found = reference(source).and_then(|r| match r.names.as_slice() {
                [data, kind, name, _] if data == "data" => terraform.data(kind, name),
                _ => None,
            });
            match found {
                Some(source) => policy.merge(source, function),
                None => policy.problems.push(format!(
                    "merges {}, which is not a declared policy document",
                    text(source)
                )),
            }
        }
        Some(policy)
    }

    fn merge(&mut self, document: &Body, function: &str) {
        let bind = |text: String| text.replace("each.key", &format!("\"{function}\""));
        self.text += &bind(hcl::format::to_string(document).expect("formatting into memory"));
        for statement in blocks(document, "statement") {
            let sid = text_at(statement, "sid").unwrap_or_default();
            for negated in ["not_actions", "not_resources"] {
                if attr(statement, negated).is_some() {
                    self.problems.push(format!(
                        "statement {sid:?} uses {negated}, which allows everything it does not list"
                    ));
                }
            }
            if text_at(statement, "effect").is_some_and(|effect| effect != "Allow") {
                continue;
            }
            // One statement per resource, so each grant reads on its own.
            let named: BTreeSet<String> = elements_at(statement, "resources")
                .iter()
                .filter_map(|resource| named_resource(&bind(text(resource))))
                .collect();
            if named.len() > 1 {
                self.problems.push(format!(
                    "statement {sid:?} names {} resources ({}); write one statement per resource",
                    named.len(),
                    named.into_iter().collect::<Vec<_>>().join(", "),
                ));
            }
            for action in elements_at(statement, "actions") {
                for resource in elements_at(statement, "resources") {
                    self.grants.insert((text(action), bind(text(resource))));
                }
            }
        }
    }

    fn covers(&self, (action, resource): &Grant) -> bool {
        self.grants.iter().any(|(granted, on)| {
            wildcard_match(granted.as_bytes(), action.as_bytes())
                && wildcard_match(on.as_bytes(), resource.as_bytes())
        })
    }
}

/// The document governs the function only if it is the one policy on the
/// role the function runs as.
fn attachment_violations(terraform: &Terraform, function: &str) -> Vec<String> {
    let role = format!("aws_iam_role.{function}");
    let document = format!("data.aws_iam_policy_document.{function}.json");
    let mut violations = Vec::new();
    let runs_as = terraform
        .resource("aws_lambda_function", function)
        .and_then(|body| text_at(body, "role"));
    if runs_as != Some(format!("{role}.arn")) {
        violations.push(format!(
            "aws_lambda_function.{function} does not run as {role}"
        ));
    }
    let mut attached = false;
    for kind in ["aws_iam_role_policy", "aws_iam_role_policy_attachment"] {
        for (name, body) in terraform.resources(kind) {
            if !text_at(body, "role").is_some_and(|r| mentions(&r, &role)) {
                continue;
            }
            if text_at(body, "policy") == Some(document.clone()) {
                attached = true;
            } else {
                violations.push(format!("{kind}.{name} grants {role} more than {document}"));
            }
        }
    }
    if !attached {
        violations.push(format!("{document} is not attached to {role}"));
    }
    violations
}

fn function_policy_violations(terraform: &Terraform, function: &str) -> Vec<String> {
    let Some(policy) = Policy::read(terraform, function) else {
        return vec![format!("no data.aws_iam_policy_document.{function}")];
    };
    let needs = needs(function);
    let excess = policy.grants.difference(&needs).map(|(action, resource)| {
        format!("grants {action} on {resource}, which its code does not call")
    });
    let missing = needs
        .iter()
        .filter(|need| !policy.covers(need))
        .map(|(action, resource)| format!("lacks {action} on {resource}, which its code calls"));
    let foreign = foreign_resources(function)
        .into_iter()
        .filter(|resource| mentions(&policy.text, resource))
        .map(|resource| format!("mentions {resource}, which only other functions use"));
    policy
        .problems
        .iter()
        .cloned()
        .chain(excess)
        .chain(missing)
        .chain(foreign)
        .chain(attachment_violations(terraform, function))
        .map(|violation| format!("{function}: {violation}"))
        .collect()
}

fn policy_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    FUNCTIONS
        .into_iter()
        .flat_map(|function| function_policy_violations(&terraform, function))
        .collect()
}

// --- 4. who may publish the contract's events --------------------------------

/// A statement's condition as `(test, variable, values)`, each value as
/// source text with `local.` references followed and `concat(...)` and
/// lists flattened, so `[local.event_source]` reads as the source itself.
type Condition = (String, String, Vec<String>);

fn values(terraform: &Terraform, expr: &Expression) -> Vec<String> {
    match terraform.resolve(expr) {
        Expression::FuncCall(call) if call.name.name.as_str() == "concat" => call
            .args
            .iter()
            .flat_map(|arg| values(terraform, arg))
            .collect(),
        Expression::Array(items) => items
            .iter()
            .flat_map(|item| values(terraform, item))
            .collect(),
        other => vec![text(other)],
    }
}

fn conditions(terraform: &Terraform, statement: &Body) -> Vec<Condition> {
    blocks(statement, "condition")
        .map(|condition| {
            (
                text_at(condition, "test").unwrap_or_default(),
                text_at(condition, "variable").unwrap_or_default(),
                attr(condition, "values").map_or_else(Vec::new, |v| values(terraform, v)),
            )
        })
        .collect()
}

/// Whether the statement has this condition, with exactly these values (in
/// any order).
fn has_condition(
    terraform: &Terraform,
    statement: &Body,
    tests: &[&str],
    variable: &str,
    wanted: &[&str],
) -> bool {
    let wanted: BTreeSet<&str> = wanted.iter().copied().collect();
    conditions(terraform, statement)
        .iter()
        .any(|(test, var, values)| {
            tests.contains(&test.as_str())
                && var == variable
                && values.iter().map(String::as_str).collect::<BTreeSet<_>>() == wanted
        })
}

fn grants_action(statement: &Body, action: &str) -> bool {
    elements_at(statement, "actions")
        .iter()
        .any(|granted| wildcard_match(text(granted).as_bytes(), action.as_bytes()))
}

/// The functions that publish, and the only principals besides the
/// redrive role the bus lets send the contract's source.
const PUBLISHERS: [&str; 2] = ["auth_exchange", "outbox_relay"];
const REDRIVE_PRINCIPALS: &str = "var.redrive_principal_arns";

fn publishing_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    let mut violations = Vec::new();
    let source = terraform.local("event_source").map(text);
    if source.as_deref() != Some(SOURCE) {
        violations.push(format!(
            "local.event_source is {}, the contract's SOURCE is {SOURCE}",
            source.as_deref().unwrap_or("unset")
        ));
    }
    // Each publisher's own grant is limited to the contract's source.
    for function in PUBLISHERS {
        let Some(document) = terraform.data("aws_iam_policy_document", function) else {
            continue; // the policy check reports the missing document
        };
        for statement in blocks(document, "statement") {
            if grants_action(statement, "events:PutEvents")
                && !has_condition(
                    &terraform,
                    statement,
                    &["StringEquals"],
                    "events:source",
                    &[SOURCE],
                )
            {
                violations.push(format!(
                    "{function}: statement {:?} grants events:PutEvents without events:source = {SOURCE}",
                    text_at(statement, "sid").unwrap_or_default()
                ));
            }
        }
    }
    // The bus denies the source to everyone else.
    let bus_name = "aws_cloudwatch_event_bus.auth.name";
    let policy = terraform
        .resources("aws_cloudwatch_event_bus_policy")
        .find(|(_, body)| text_at(body, "event_bus_name").as_deref() == Some(bus_name))
        .and_then(|(_, body)| reference(attr(body, "policy")?))
        .and_then(|r| match r.names.as_slice() {
            [data, kind, name, json] if data == "data" && json == "json" => {
                terraform.data(kind, name)
            }
            _ => None,
        });
    let allowed: Vec<String> = PUBLISHERS
        .iter()
        .map(|function| format!("aws_iam_role.{function}.arn"))
        .chain(once(REDRIVE_PRINCIPALS.to_owned()))
        .collect();
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let denies = policy.is_some_and(|document| {
        blocks(document, "statement").any(|statement| {
            text_at(statement, "effect").as_deref() == Some("Deny")
                && grants_action(statement, "events:PutEvents")
                && elements_at(statement, "resources")
                    .iter()
                    .any(|resource| text(resource) == BUS_ARN)
                && blocks(statement, "principals").any(|principals| {
                    text_at(principals, "identifiers").as_deref() == Some(r#"["*"]"#)
                })
                && has_condition(
                    &terraform,
                    statement,
                    &["StringEquals"],
                    "events:source",
                    &[SOURCE],
                )
                && has_condition(
                    &terraform,
                    statement,
                    &["ArnNotEquals", "ArnNotLike"],
                    "aws:PrincipalArn",
                    &allowed,
                )
        })
    });
    if !denies {
        violations.push(format!(
            "no aws_cloudwatch_event_bus_policy on {bus_name} denies events:PutEvents of {SOURCE} \
             to every principal but {}",
            allowed.join(", ")
        ));
    }
    let variable = terraform.named_block("variable", "redrive_principal_arns");
    let shape = variable.map(|body| (text_at(body, "type"), text_at(body, "default")));
    if shape != Some((Some("list(string)".to_owned()), Some("[]".to_owned()))) {
        violations.push(format!(
            "{REDRIVE_PRINCIPALS} is not declared as list(string) with default []"
        ));
    }
    violations
}

/// The app role trusts only the exchange, and only for a session that
/// names its user and carries exactly the user's tag.
fn trust_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    let Some(document) = terraform.data("aws_iam_policy_document", "app_assume") else {
        return vec!["no data.aws_iam_policy_document.app_assume".to_owned()];
    };
    let request_tag = format!("aws:RequestTag/{USER_ID_TAG}");
    let mut violations = Vec::new();
    for statement in blocks(document, "statement") {
        let sid = text_at(statement, "sid").unwrap_or_default();
        if !["sts:AssumeRole", "sts:TagSession"]
            .iter()
            .any(|action| grants_action(statement, action))
        {
            continue;
        }
        let tagged = has_condition(&terraform, statement, &["Null"], &request_tag, &["false"])
            || has_condition(&terraform, statement, &["StringLike"], &request_tag, &["*"]);
        if !tagged {
            violations.push(format!(
                "app_assume: statement {sid:?} does not require {request_tag}"
            ));
        }
        if !has_condition(
            &terraform,
            statement,
            &["ForAllValues:StringEquals"],
            "aws:TagKeys",
            &[USER_ID_TAG],
        ) {
            violations.push(format!(
                "app_assume: statement {sid:?} does not pin aws:TagKeys to [{USER_ID_TAG}]"
            ));
        }
    }
    violations
}

// --- 5. the key, only through the services that use it ------------------------

/// The services each function reaches the stack's key through: the tables
/// and stream (DynamoDB), the bus (EventBridge), the DLQ (SQS) and its own
/// environment (Lambda, with the function's role).
fn key_services(function: &str) -> &'static [&'static str] {
    match function {
        "auth_exchange" => &["dynamodb", "events", "lambda"],
        "outbox_relay" => &["dynamodb", "events", "sqs", "lambda"],
        "user_profile" => &["dynamodb", "sqs", "lambda"],
        other => panic!("no key services written down for {other}"),
    }
}

/// A function's document and the documents it merges.
fn documents<'a>(terraform: &'a Terraform, function: &str) -> Vec<&'a Body> {
    let Some(document) = terraform.data("aws_iam_policy_document", function) else {
        return Vec::new();
    };
    let merged = ["source_policy_documents", "override_policy_documents"]
        .into_iter()
        .flat_map(|key| elements_at(document, key))
        .filter_map(|source| {
            reference(source).and_then(|r| match r.names.as_slice() {
                [data, kind, name, _] if data == "data" => terraform.data(kind, name),
                _ => None,
            })
        });
    once(document).chain(merged).collect()
}

fn kms_violations(dir: &Path) -> Vec<String> {
    let terraform = Terraform::load(dir);
    let mut violations = Vec::new();
    for function in FUNCTIONS {
        let wanted: Vec<String> = key_services(function)
            .iter()
            .map(|service| format!("{service}.${{var.region}}.amazonaws.com"))
            .collect();
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        for statement in documents(&terraform, function)
            .into_iter()
            .flat_map(|document| blocks(document, "statement"))
        {
            let grants_key = elements_at(statement, "actions")
                .iter()
                .any(|action| text(action).starts_with("kms:"));
            if grants_key
                && !has_condition(
                    &terraform,
                    statement,
                    &["StringEquals"],
                    "kms:ViaService",
                    &wanted,
                )
            {
                violations.push(format!(
                    "{function}: statement {:?} grants the key without kms:ViaService = {}",
                    text_at(statement, "sid").unwrap_or_default(),
                    wanted.join(", "),
                ));
            }
        }
    }
    // EventBridge encrypts the bus and archive with the key, for this stack only.
    let events_may_use_key = terraform
        .data("aws_iam_policy_document", "kms")
        .is_some_and(|policy| {
            blocks(policy, "statement").any(|statement| {
                blocks(statement, "principals").any(|principals| {
                    text_at(principals, "identifiers").as_deref()
                        == Some(r#"["events.amazonaws.com"]"#)
                }) && grants_action(statement, "kms:GenerateDataKey")
                    && conditions(&terraform, statement)
                        .iter()
                        .any(|(_, variable, values)| {
                            ["aws:SourceArn", "kms:ViaService"].contains(&variable.as_str())
                                && !values.is_empty()
                        })
            })
        });
    if !events_may_use_key {
        violations.push(
            "the key policy does not let events.amazonaws.com use the key for this stack's bus"
                .to_owned(),
        );
    }
    violations
}

// --- the tests ---------------------------------------------------------------

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/terraform")
}

/// One deliberate breakage of the real stack: in `file`, the single
/// occurrence of `find` becomes `replace`.
#[derive(Debug)]
struct Breakage {
    name: &'static str,
    file: &'static str,
    find: &'static str,
    replace: &'static str,
}

/// What the broken copy changes, each expected in the tests below.
const BREAKAGES: &[Breakage] = &[
    // The index sorts on another attribute than migrations/ says: the sweep's
    // oldest-first query would read a key the items do not have.
    Breakage {
        name: "pending-by-age sorts on updatedAt",
        file: "tables.tf",
        find: r#"    range_key       = "createdAt""#,
        replace: r#"    range_key       = "updatedAt""#,
    },
    // TTL off on processed-events: idempotency records pile up forever.
    Breakage {
        name: "processed-events TTL disabled",
        file: "tables.tf",
        find: r#"  # event that can still be redriven is still deduplicated.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true"#,
        replace: r#"  # event that can still be redriven is still deduplicated.
  ttl {
    attribute_name = "expiresAt"
    enabled        = false"#,
    },
    // No bisecting: one poison record fails its whole batch until the retries
    // run out.
    Breakage {
        name: "stream mapping does not bisect",
        file: "mapping.tf",
        find: "  bisect_batch_on_function_error = true\n",
        replace: "",
    },
    // No dead_letter_config on the rule target: an event EventBridge cannot
    // deliver is dropped after the retries.
    Breakage {
        name: "rule target has no DLQ",
        file: "bus.tf",
        find: "\n  dead_letter_config {\n    arn = aws_sqs_queue.dlq.arn\n  }\n",
        replace: "\n",
    },
    // The relay-errors alarm (the only one with period 300 and one evaluation
    // period) loses its alarm_actions, so it fires at nobody.
    Breakage {
        name: "relay_errors alarm notifies nobody",
        file: "alarms.tf",
        find: r#"  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
"#,
        replace: r#"  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
"#,
    },
    // The iterator-age alarm is gone: a relay falling behind the stream goes
    // unnoticed until records age out.
    Breakage {
        name: "no relay iterator-age alarm",
        file: "alarms.tf",
        find: r#"# Five minutes behind on a 24 h stream is not yet loss, but it is the early
# warning: records past maximum_record_age go to the DLQ.
resource "aws_cloudwatch_metric_alarm" "relay_iterator_age" {
  alarm_name        = "${var.prefix}outbox-relay-iterator-age"
  alarm_description = "The relay is more than 5 minutes behind the outbox stream."
  namespace         = "AWS/Lambda"
  metric_name       = "IteratorAge"
  dimensions = {
    FunctionName = aws_lambda_function.outbox_relay.function_name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 300000
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}
"#,
        replace: "",
    },
    // A wildcard where the relay needs two actions: least privilege lost.
    Breakage {
        name: "relay granted dynamodb:*",
        file: "iam.tf",
        find: r#"    sid       = "MarkPublished"
    actions   = ["dynamodb:UpdateItem"]"#,
        replace: r#"    sid       = "MarkPublished"
    actions   = ["dynamodb:*"]"#,
    },
    // The profile function may write the outbox, which it has no business
    // touching: another function's table in its policy.
    Breakage {
        name: "user_profile may write the outbox",
        file: "iam.tf",
        find: "  # The async on-failure destination is written with this role.\n",
        replace: r#"  statement {
    sid       = "WriteOutbox"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.outbox.arn]
  }

  # The async on-failure destination is written with this role.
"#,
    },
    // The users update folded into a statement for both profile tables: an
    // Update on processed-events the code never makes.
    Breakage {
        name: "user_profile updates both tables",
        file: "iam.tf",
        find: r#"    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.users.arn]"#,
        replace: r#"    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.users.arn, aws_dynamodb_table.processed_events.arn]"#,
    },
    // The relay may publish any source: a bug in it could impersonate
    // another producer on the bus.
    Breakage {
        name: "relay publishes any source",
        file: "iam.tf",
        find: r#"    sid       = "Publish"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.auth.arn]

    # Only the contract's own events: the bus policy denies this source to
    # everyone else, and this role may publish nothing else.
    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.event_source]
    }
"#,
        replace: r#"    sid       = "Publish"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.auth.arn]
"#,
    },
    // The profile function's role joins the publishers in the bus policy.
    Breakage {
        name: "bus lets user_profile publish auth events",
        file: "bus.tf",
        find: "[aws_iam_role.auth_exchange.arn, aws_iam_role.outbox_relay.arn],",
        replace: "[aws_iam_role.auth_exchange.arn, aws_iam_role.outbox_relay.arn, aws_iam_role.user_profile.arn],",
    },
    // The trust policy lets the exchange add any tag keys it likes.
    Breakage {
        name: "app trust policy accepts any tag keys",
        file: "iam.tf",
        find: r#"      variable = "aws:TagKeys"
      values   = ["userId"]"#,
        replace: r#"      variable = "aws:TagKeys"
      values   = ["userId", "*"]"#,
    },
    // The relay's key grant no longer names the services it goes through.
    Breakage {
        name: "relay may use the key directly",
        file: "iam.tf",
        find: r#"        "dynamodb.${var.region}.amazonaws.com",
        "events.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com","#,
        replace: r#"        "dynamodb.${var.region}.amazonaws.com",
        "events.${var.region}.amazonaws.com",
        "kms.${var.region}.amazonaws.com","#,
    },
    // The archive falls back to an AWS-owned key.
    Breakage {
        name: "archive not under the stack's key",
        file: "bus.tf",
        find: "  retention_days     = 30\n  kms_key_identifier = aws_kms_key.events.arn\n",
        replace: "  retention_days     = 30\n",
    },
];

/// A copy of `infra/terraform` with `BREAKAGES` applied, in a fresh
/// temporary directory that is removed again on drop.
#[derive(Debug)]
struct BrokenCopy(PathBuf);

impl BrokenCopy {
    fn new() -> Self {
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "auth-events-broken-terraform-{}-{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed),
        ));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // From here on, a failing step still removes the directory.
        let copy = Self(dir);
        let stack = infra();
        for entry in std::fs::read_dir(&stack).expect("reading infra/terraform") {
            let path = entry.expect("a readable directory entry").path();
            if path.extension().is_some_and(|ext| ext == "tf") {
                let to = copy.0.join(path.file_name().expect("a file name"));
                std::fs::copy(&path, &to)
                    .unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
            }
        }
        for breakage in BREAKAGES {
            let read = |path: &Path| {
                std::fs::read_to_string(path).unwrap_or_else(|e| {
                    panic!("{}: reading {}: {e}", breakage.name, path.display())
                })
            };
            let once = |text: &str, which: &str| {
                assert_eq!(
                    text.matches(breakage.find).count(),
                    1,
                    "{}: the text to break must occur exactly once in {which}{}",
                    breakage.name,
                    breakage.file,
                );
            };
            once(&read(&stack.join(breakage.file)), "infra/terraform/");
            let target = copy.0.join(breakage.file);
            let text = read(&target);
            once(&text, "the broken copy of ");
            std::fs::write(&target, text.replacen(breakage.find, breakage.replace, 1))
                .unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
        }
        copy
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BrokenCopy {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The DLQ is made at the size the relay cuts its letters to, in Terraform
/// and in the migrations alike, and the relay is told that size.
#[test]
fn the_dlq_size_is_the_one_the_relay_cuts_letters_to() {
    let terraform = Terraform::load(&infra());
    let dlq = terraform
        .resource("aws_sqs_queue", "dlq")
        .expect("queues.tf declares the DLQ");
    assert_eq!(
        text_at(dlq, "max_message_size"),
        Some(auth_events_core::limits::DLQ_MAX_MESSAGE_BYTES.to_string()),
        "aws_sqs_queue.dlq.max_message_size"
    );
    let relay = terraform
        .resource("aws_lambda_function", "outbox_relay")
        .expect("functions.tf declares the relay");
    let Some(Expression::Object(variables)) = at(relay, "environment.variables") else {
        panic!("the relay has no environment variables");
    };
    let passed = variables
        .iter()
        .find(|(key, _)| key_text(key) == "DLQ_MAX_MESSAGE_BYTES")
        .map(|(_, value)| text(value));
    assert_eq!(
        passed.as_deref(),
        Some("aws_sqs_queue.dlq.max_message_size"),
        "the relay's DLQ_MAX_MESSAGE_BYTES"
    );
}

#[test]
fn terraform_tables_match_the_migrations() {
    assert_eq!(table_violations(&infra()), Vec::<String>::new());
}

#[test]
fn every_queue_mapping_and_alarm_is_wired() {
    assert_eq!(wiring_violations(&infra()), Vec::<String>::new());
}

#[test]
fn each_function_policy_names_only_its_own_resources() {
    assert_eq!(policy_violations(&infra()), Vec::<String>::new());
}

#[test]
fn the_broken_copy_fails_the_table_check_on_exactly_its_breakages() {
    assert_eq!(
        table_violations(BrokenCopy::new().path()),
        [
            "outbox: index pending-by-age range_key is updatedAt in Terraform, createdAt in migrations",
            "processed-events: ttl is unset in Terraform, expiresAt in migrations",
        ]
    );
}

#[test]
fn the_broken_copy_fails_the_wiring_check_on_exactly_its_breakages() {
    assert_eq!(
        wiring_violations(BrokenCopy::new().path()),
        [
            "aws_lambda_event_source_mapping.outbox_stream: bisect_batch_on_function_error is unset, want true",
            "aws_cloudwatch_event_target.user_profile: dead_letter_config.arn is unset, want aws_sqs_queue.dlq.arn",
            "aws_cloudwatch_metric_alarm.relay_errors: alarm_actions is unset, want a value (not -1, not [])",
            "aws_cloudwatch_event_archive.auth: kms_key_identifier is unset, want aws_kms_key.events.arn",
            "no aws_cloudwatch_metric_alarm watches relay iterator age (AWS/Lambda IteratorAge)",
        ]
    );
}

#[test]
fn the_broken_copy_fails_the_policy_check_on_exactly_its_breakages() {
    assert_eq!(
        policy_violations(BrokenCopy::new().path()),
        [
            "outbox_relay: grants dynamodb:* on aws_dynamodb_table.outbox.arn, which its code does not call",
            "user_profile: statement \"UpdateUser\" names 2 resources (aws_dynamodb_table.processed_events, aws_dynamodb_table.users); write one statement per resource",
            "user_profile: grants dynamodb:PutItem on aws_dynamodb_table.outbox.arn, which its code does not call",
            "user_profile: grants dynamodb:UpdateItem on aws_dynamodb_table.processed_events.arn, which its code does not call",
            "user_profile: mentions aws_dynamodb_table.outbox, which only other functions use",
        ]
    );
}

#[test]
fn only_the_publishers_may_send_the_contracts_events() {
    assert_eq!(publishing_violations(&infra()), Vec::<String>::new());
}

#[test]
fn the_app_role_trusts_only_sessions_tagged_with_the_user() {
    assert_eq!(trust_violations(&infra()), Vec::<String>::new());
}

#[test]
fn the_broken_copy_fails_the_publishing_check_on_exactly_its_breakages() {
    assert_eq!(
        publishing_violations(BrokenCopy::new().path()),
        [
            "outbox_relay: statement \"Publish\" grants events:PutEvents without events:source = interview-companion.auth",
            "no aws_cloudwatch_event_bus_policy on aws_cloudwatch_event_bus.auth.name denies events:PutEvents of \
             interview-companion.auth to every principal but aws_iam_role.auth_exchange.arn, \
             aws_iam_role.outbox_relay.arn, var.redrive_principal_arns",
        ]
    );
}

#[test]
fn the_broken_copy_fails_the_trust_check_on_exactly_its_breakages() {
    assert_eq!(
        trust_violations(BrokenCopy::new().path()),
        ["app_assume: statement \"TokenExchange\" does not pin aws:TagKeys to [userId]"]
    );
}

#[test]
fn every_key_grant_names_the_services_that_use_the_key() {
    assert_eq!(kms_violations(&infra()), Vec::<String>::new());
}

#[test]
fn the_broken_copy_fails_the_key_check_on_exactly_its_breakages() {
    assert_eq!(
        kms_violations(BrokenCopy::new().path()),
        [
            "outbox_relay: statement \"DataKey\" grants the key without kms:ViaService = \
             dynamodb.${var.region}.amazonaws.com, events.${var.region}.amazonaws.com, \
             sqs.${var.region}.amazonaws.com, lambda.${var.region}.amazonaws.com",
        ]
    );
}
