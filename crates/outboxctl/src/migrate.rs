//! `outboxctl migrate`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use auth_events_aws::migrate::{Change, Migrator, Names};

use crate::cli::{Global, MigrateArgs};

pub async fn sdk_config(global: &Global) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = &global.endpoint_url {
        loader = loader.endpoint_url(url);
        // A loopback endpoint is the local stack, which takes any
        // credentials; without this the SDK would wait on IMDS.
        let loopback = url.contains("://127.") || url.contains("://localhost");
        if loopback && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && global.profile.is_none() {
            loader = loader
                .credentials_provider(crate::local::local_credentials())
                .region(aws_config::Region::new("us-east-1"));
        }
    }
    if let Some(region) = &global.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Applies the migrations and returns what changed.
pub async fn apply(
    sdk: &aws_config::SdkConfig,
    names: &Names,
    local_stack: bool,
) -> Result<Vec<Change>> {
    let migrator = Migrator::new(sdk, names.clone());
    let endpoint = sdk
        .endpoint_url()
        .unwrap_or("the default AWS endpoint")
        .to_owned();
    let hint = || {
        format!(
            "migrating tables with prefix {:?} at {endpoint} (is it up? `make venv && .venv/bin/moto_server -p 5000` starts a local one; else check --endpoint-url and credentials)",
            names.prefix
        )
    };
    let mut changes = migrator.apply_tables().await.with_context(hint)?;
    if local_stack {
        changes.extend(migrator.apply_messaging().await.with_context(hint)?);
    }
    Ok(changes)
}

pub async fn run(global: &Global, args: &MigrateArgs) -> Result<ExitCode> {
    let names = Names::for_prefix(&global.prefix)?;
    let sdk = sdk_config(global).await;
    let changes = apply(&sdk, &names, args.local_stack).await?;
    if global.json {
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            serde_json::json!({ "prefix": names.prefix, "changes": lines })
        );
    } else if changes.is_empty() {
        println!(
            "nothing to do: every table of prefix {:?} is up to date",
            names.prefix
        );
    } else {
        for change in &changes {
            println!("{change}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
