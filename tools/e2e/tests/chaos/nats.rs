//! Private nats-servers on the suite's ports: one alone, or three in a
//! JetStream cluster on loopback. The shared server on 4222 is never touched.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Client ports 29020.., cluster (route) ports 29030...
const CLIENT_BASE: u16 = 29020;
const ROUTE_BASE: u16 = 29030;

pub struct Node {
    pub name: String,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    async fn launch(&mut self) {
        let child = Command::new(waiter_harness::nats_server::binary())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        waiter_harness::nats_server::wait_listening(self.port).await;
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Nats {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl Nats {
    /// `size` servers (1, or 3 for a cluster), each with its own store.
    pub async fn start(size: usize) -> Nats {
        let dir = std::env::temp_dir().join(format!("waiter-chaos-nats-{}", uuid::Uuid::new_v4()));
        let routes: Vec<String> = (0..size)
            .map(|i| format!("nats://127.0.0.1:{}", ROUTE_BASE + i as u16))
            .collect();
        let mut nodes = vec![];
        for i in 0..size {
            let name = format!("n{}", i + 1);
            let port = CLIENT_BASE + i as u16;
            let store = dir.join(&name);
            std::fs::create_dir_all(&store).expect("nats store");
            let mut args: Vec<String> = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
                "--server_name".into(),
                name.clone(),
            ];
            if size > 1 {
                args.extend([
                    "--cluster_name".into(),
                    "chaos".into(),
                    "--cluster".into(),
                    routes[i].clone(),
                    "--routes".into(),
                    routes.join(","),
                ]);
            }
            nodes.push(Node {
                name,
                port,
                args,
                child: None,
            });
        }
        for node in &mut nodes {
            node.launch().await;
        }
        Nats { nodes, dir }
    }

    /// Every node's URL, comma-separated, as `NATS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub async fn restart(&mut self, name: &str) {
        let node = self.node(name);
        node.kill();
        node.launch().await;
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
