//! A moto server from the project virtualenv: the local AWS endpoint.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

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
        let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
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
        Self::sdk_config_for(&self.endpoint).await
    }

    /// The same for a local endpoint started elsewhere (`--endpoint-url`).
    pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(local_credentials())
            .load()
            .await
    }
}

pub fn local_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("local", "local", None, None, "outboxctl-local")
}
