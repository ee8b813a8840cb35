//! `outboxctl migrate`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use auth_events_aws::migrate::{Change, Migrator, Names};

use crate::cli::Global;

pub async fn sdk_config(global: &Global) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = &global.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &global.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Applies the table migrations and returns what changed.
pub async fn apply(sdk: &aws_config::SdkConfig, names: &Names) -> Result<Vec<Change>> {
    let migrator = Migrator::new(sdk, names.clone());
    let endpoint = sdk
        .endpoint_url()
        .unwrap_or("the default AWS endpoint")
        .to_owned();
    let hint = || {
        format!(
            "migrating tables with prefix {:?} at {endpoint} (is it up? else check --endpoint-url, --region and credentials)",
            names.prefix
        )
    };
    migrator.apply_tables().await.with_context(hint)
}

pub async fn run(global: &Global) -> Result<ExitCode> {
    let names = Names::for_prefix(&global.prefix)?;
    let sdk = sdk_config(global).await;
    let changes = apply(&sdk, &names).await?;
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
