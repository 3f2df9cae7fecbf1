//! A private nats-server for tests that must stop, restart or configure
//! NATS: its own port and its own store under the temp directory, killed
//! and removed on drop. The shared server on 4222 is never touched.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `NATS_SERVER_BIN`, else `/usr/sbin/nats-server`, else `nats-server` on PATH.
pub fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return bin.into();
    }
    let packaged = Path::new("/usr/sbin/nats-server");
    if packaged.exists() {
        packaged.into()
    } else {
        "nats-server".into()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct PrivateNats {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl PrivateNats {
    /// A server on a free loopback port; `jetstream` false starts it
    /// without JetStream (core NATS answers, the JetStream API does not).
    pub async fn start(jetstream: bool) -> PrivateNats {
        let dir = std::env::temp_dir().join(format!("waiter-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("nats store dir");
        let mut server = PrivateNats {
            port: free_port(),
            dir,
            child: None,
            env: vec![],
        };
        server.launch(jetstream, None).await;
        server
    }

    /// A server running `config` (the text of a nats-server configuration;
    /// `{port}` and `{store}` are filled in) with `env` in its environment.
    pub async fn with_config(config: &str, env: &[(String, String)]) -> PrivateNats {
        let dir = std::env::temp_dir().join(format!("waiter-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("nats store dir");
        let port = free_port();
        let text = config
            .replace("{port}", &port.to_string())
            .replace("{store}", &dir.join("js").display().to_string());
        let path = dir.join("server.conf");
        std::fs::write(&path, text).expect("write nats config");
        let mut server = PrivateNats {
            port,
            dir,
            child: None,
            env: vec![],
        };
        server.env = env.to_vec();
        server.launch(true, Some(path)).await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (kill -9) and starts it again on the same port and
    /// store, with or without JetStream.
    pub async fn restart(&mut self, jetstream: bool) {
        self.stop();
        self.launch(jetstream, None).await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn launch(&mut self, jetstream: bool, config: Option<PathBuf>) {
        let mut command = Command::new(binary());
        match config {
            Some(path) => {
                command.arg("-c").arg(path);
            }
            None => {
                command
                    .args(["-a", "127.0.0.1", "-p"])
                    .arg(self.port.to_string());
                if jetstream {
                    command.arg("-js").arg("-sd").arg(self.dir.join("js"));
                }
            }
        }
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);
        wait_listening(self.port).await;
    }
}

/// Waits up to 10 s for a nats-server just started to listen on `port`.
pub async fn wait_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
