//! schemathesis (PyPI) against the notifier of a running pipeline: a
//! bounded number of generated requests per operation of the OpenAPI
//! document, with a real restaurant, conversation and order. No answer may
//! be a server error, and every answer must match the document (status,
//! content type, body schema, headers).
//!
//! Reports: `target/schemathesis/` (JUnit XML).

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::Command;
use waiter_e2e::{browser::screenshot_dir, chat::*, Pipeline};

/// Generated cases per operation and phase: enough to find odd input,
/// few enough for CI (the run takes about a minute).
const MAX_EXAMPLES: &str = "40";
/// The run is killed (and the test fails) past this.
const LIMIT: Duration = Duration::from_secs(300);

/// `SCHEMATHESIS` if set, else the one `tools/ops/ensure-test-tools.sh`
/// installs, else any on the PATH.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let installed = home.join(".cache/waiter-schemathesis/bin/schemathesis");
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("schemathesis"))
        .find(|st| st.is_file())
        .unwrap_or_else(|| {
            panic!("schemathesis is missing: tools/ops/ensure-test-tools.sh installs it")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_every_answer_matches_the_document() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let chat = Chat::new(&p, r, customer(81), Some("Hessa"));
    let order = place_order(&chat, None).await;
    let (conversation,): (uuid::Uuid,) =
        sqlx::query_as("SELECT conversation_id FROM orders WHERE id = $1")
            .bind(order.id)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    let reports = screenshot_dir().with_file_name("schemathesis");
    std::fs::create_dir_all(&reports).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let mut run = Command::new(schemathesis())
        .args(["--config-file", config, "run"])
        .arg(format!("http://{}/api/openapi.json", p.notifier))
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "20261201",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--workers", "2"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&reports)
        .env("WAITER_TOKEN", p.token(0))
        .env("WAITER_RESTAURANT_ID", r.id.to_string())
        .env("WAITER_CONVERSATION_ID", conversation.to_string())
        .env("WAITER_ORDER_ID", order.id.to_string())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start schemathesis");
    let (stdout, stderr) = (run.stdout.take().unwrap(), run.stderr.take().unwrap());
    let read = |mut s: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut s, &mut text).await;
        text
    };
    let (out, err) = (
        tokio::spawn(read(Box::new(stdout))),
        tokio::spawn(read(Box::new(stderr))),
    );
    let status = tokio::time::timeout(LIMIT, run.wait())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {LIMIT:?}"))
        .expect("schemathesis exit status");
    let (out, err) = (out.await.unwrap(), err.await.unwrap());
    // Written out so a failure can be read in full.
    std::fs::write(reports.join("output.txt"), format!("{out}\n{err}")).unwrap();
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("passed"), "schemathesis ran tests:\n{out}");
}
