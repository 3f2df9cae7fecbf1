//! The supervisor's control socket, `.run/supervisor.sock`: one JSON line
//! in, one JSON line out.
//!
//! A Unix socket rather than a file the supervisor watches: the caller gets
//! an answer (an unknown stage, a port in use) and knows when the work is
//! done (`scale` down answers once the replicas have drained and exited),
//! nothing polls, and the socket's mode (0600) keeps other users out.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Run `replicas` of `stage`.
    Scale { stage: String, replicas: u32 },
    /// Stop every process and exit.
    Stop,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Set when the request was refused.
    pub error: Option<String>,
    /// Replica ids started, with their ops ports.
    pub started: Vec<(String, u16)>,
    /// Replica ids stopped (drained and exited).
    pub stopped: Vec<String>,
}

impl Reply {
    pub fn refused(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            ..Self::default()
        }
    }
}

/// Sends one request; `Ok(None)` when no supervisor listens there.
pub async fn send(socket: &Path, request: &Request) -> anyhow::Result<Option<Reply>> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", socket.display())),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .context("reading the supervisor's answer")?;
    let reply = serde_json::from_str(&answer)
        .with_context(|| format!("the supervisor answered {answer:?}"))?;
    Ok(Some(reply))
}

/// Reads one request from a connection and writes the answer `handle` gives.
pub async fn serve_one<F, Fut>(stream: UnixStream, handle: F) -> std::io::Result<()>
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handle(request).await,
        Err(e) => Reply::refused(format!("not a request: {e}")),
    };
    let mut out = serde_json::to_string(&reply).expect("reply JSON");
    out.push('\n');
    write.write_all(out.as_bytes()).await
}
