use std::process::Output;

use assert_cmd::Command;
use secrecy::ExposeSecret;
use uuid::Uuid;
use waiter_harness::{Keyring, TestBus, TestDb};

/// A database and a namespace for one test, and the binary pointed at them.
pub struct Ctl {
    pub db: TestDb,
    pub bus: TestBus,
    /// `WAITER_SECRET_KEY` the commands get (the harness's test keyring).
    pub keys: String,
    pub dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    fn of(output: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            code: output.status.code().unwrap_or(-1),
        }
    }

    /// Exit status 0; returns standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Exit status `code`; returns standard error.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        &self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Ctl {
    pub async fn new() -> Ctl {
        waiter_harness::init_logs();
        let (db, bus) = tokio::join!(TestDb::new(), TestBus::new());
        Ctl {
            db,
            bus,
            keys: Keyring::for_tests()
                .to_env_value()
                .expose_secret()
                .to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::cargo_bin("waiterctl").expect("the waiterctl binary");
        c.current_dir(self.dir.path())
            .env("DATABASE_URL", &self.db.url)
            .env("WAITER_NAMESPACE", self.bus.namespace())
            .env("WAITER_PARTITIONS", "4")
            .env("WAITER_SECRET_KEY", &self.keys)
            .env("JWT_SECRET", "cli-test-jwt-secret")
            .env_remove("TENANT_AUTH_TOKEN")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `waiterctl ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command().args(args).output().expect("run waiterctl"))
    }

    /// Runs with extra environment.
    pub fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut c = self.command();
        for (k, v) in env {
            c.env(k, v);
        }
        Run::of(c.args(args).output().expect("run waiterctl"))
    }

    /// A file in this test's directory.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path.to_string_lossy().into_owned()
    }

    /// Creates a restaurant; returns its account SID and auth token.
    pub fn restaurant(&self, slug: &str) -> (String, String) {
        let n = Uuid::new_v4().as_u128();
        let account = format!("AC{:032x}", n);
        let token = format!("tok{:029x}", n >> 8);
        let number = format!("whatsapp:+9665{:08}", n % 100_000_000);
        self.run_with(
            &[("TENANT_AUTH_TOKEN", &token)],
            &[
                "restaurant",
                "create",
                "--slug",
                slug,
                "--number",
                &number,
                "--account-sid",
                &account,
                "--time-zone",
                "Asia/Riyadh",
                "--name-en",
                "Bait Grill",
                "--name-ar",
                "مشويات البيت",
            ],
        )
        .ok();
        (account, token)
    }

    /// The tenant directory as an ingest holding `keys` sees it (loaded),
    /// and the token that stops following it.
    pub async fn directory(
        &self,
        keys: Keyring,
    ) -> (
        waiter_nats::directory::DirectoryCache,
        tokio_util::sync::CancellationToken,
    ) {
        let directory = waiter_nats::directory::Directory::open(&self.bus.bus)
            .await
            .unwrap();
        let cache = waiter_nats::directory::DirectoryCache::new(keys);
        let shutdown = tokio_util::sync::CancellationToken::new();
        directory
            .follow(
                cache.clone(),
                std::time::Duration::from_secs(5),
                shutdown.clone(),
            )
            .await
            .unwrap();
        (cache, shutdown)
    }

    /// A restaurant with the demo branches.
    pub fn restaurant_with_branches(&self, slug: &str) -> (String, String) {
        let created = self.restaurant(slug);
        for (code, en, ar) in [
            ("olaya", "Olaya", "العليا"),
            ("al-malqa", "Al Malqa", "الملقا"),
        ] {
            self.run(&[
                "branch",
                "add",
                "--restaurant",
                slug,
                "--code",
                code,
                "--name-en",
                en,
                "--name-ar",
                ar,
                "--latitude",
                "24.69",
                "--longitude",
                "46.68",
                "--radius-km",
                "8",
            ])
            .ok();
        }
        created
    }
}

pub const EXAMPLE_CSV: &str = include_str!("../../../../docs/menu-example.csv");
pub const EXAMPLE_JSON: &str = include_str!("../../../../docs/menu-example.json");
