//! The local stack: a moto server from the project virtualenv, and the demo
//! that runs the story on it.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_events_aws::migrate::Names;

use crate::cli::{DemoArgs, Global};
use crate::migrate;

/// A moto server this process started; stopped when dropped, so Ctrl-C or
/// an error never leaves it behind.
#[derive(Debug)]
pub struct LocalMoto {
    child: Child,
    pub endpoint: String,
}

impl Drop for LocalMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map_or_else(|| PathBuf::from(".venv/bin/moto_server"), PathBuf::from)
}

impl LocalMoto {
    pub async fn start(port: u16) -> Result<Self> {
        let binary = moto_binary();
        if !binary.exists() {
            bail!(
                "moto is not installed at {}: run `make venv` from the repository root (or set MOTO_SERVER)",
                binary.display()
            );
        }
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port()
        } else {
            port
        };
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > deadline {
                bail!("moto did not listen on 127.0.0.1:{port} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(moto)
    }

    /// SDK configuration for this server: a fixed region and dummy
    /// credentials, which moto accepts and real AWS never would.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(local_credentials())
            .load()
            .await
    }
}

pub fn local_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("local", "local", None, None, "outboxctl-local")
}

pub async fn demo(global: &Global, args: &DemoArgs) -> Result<ExitCode> {
    let names = Names::for_prefix(&global.prefix)?;
    println!("== auth-events local demo ==");
    let moto = LocalMoto::start(args.moto_port).await?;
    println!("local AWS endpoint (moto): {}", moto.endpoint);
    let sdk = moto.sdk_config().await;
    println!("\n-- migrate --");
    for change in migrate::apply(&sdk, &names, true).await? {
        println!("  {change}");
    }
    println!("\n-- what exists --");
    print_inventory(&sdk, &names).await?;
    println!("\ndemo finished; the local endpoint stops now");
    Ok(ExitCode::SUCCESS)
}

async fn print_inventory(sdk: &aws_config::SdkConfig, names: &Names) -> Result<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for table in [
        names.outbox_table(),
        names.users_table(),
        names.processed_table(),
    ] {
        let description = dynamodb
            .describe_table()
            .table_name(&table)
            .send()
            .await
            .with_context(|| format!("describing table {table}"))?;
        let t = description.table().context("no table description")?;
        let keys: Vec<_> = t
            .key_schema()
            .iter()
            .map(|k| k.attribute_name().to_owned())
            .collect();
        let stream = t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map_or("off".to_owned(), |v| v.as_str().to_owned());
        let indexes: Vec<_> = t
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name())
            .collect();
        println!(
            "  table {table:<40} key {:<10} stream {stream:<9} indexes {}",
            keys.join(","),
            if indexes.is_empty() {
                "-".to_owned()
            } else {
                indexes.join(",")
            }
        );
    }
    println!("  bus   {}", names.bus);
    println!(
        "  rule  {} (user.signed_in -> queue {})",
        names.rule, names.target_queue
    );
    println!("  dlq   {}", names.dlq);
    Ok(())
}
