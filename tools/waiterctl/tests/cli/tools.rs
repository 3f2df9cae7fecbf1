//! The commands that were there before onboarding: still working.

use crate::common::{Ctl, EXAMPLE_CSV};

#[tokio::test]
async fn migrate_seed_demo_tenant_and_jwt() {
    let ctl = Ctl::new().await;
    ctl.run(&["migrate"]).ok();
    let id = ctl.run(&["seed-demo"]).ok().trim().to_string();
    assert_eq!(
        ctl.run(&["seed-demo"]).ok().trim(),
        id,
        "seeding twice is the same restaurant"
    );
    // The demo menu is the example file, imported.
    assert_eq!(
        ctl.run(&["menu", "export", "--restaurant", "bait-grill"])
            .ok(),
        EXAMPLE_CSV
    );
    let jwt = ctl.run(&["jwt", "--restaurant", "bait-grill"]);
    assert_eq!(jwt.ok().trim().split('.').count(), 3);
    assert!(ctl
        .run(&["jwt", "--restaurant", "bait-grill", "--role", "owner"])
        .fails(1)
        .contains("--role"));
    assert!(
        ctl.run_with(
            &[("JWT_SECRET", "")],
            &["jwt", "--restaurant", "bait-grill"]
        )
        .code
            != 0
    );

    let upsert = ctl.run_with(
        &[("TENANT_AUTH_TOKEN", "legacy-token")],
        &[
            "tenant",
            "upsert",
            "--slug",
            "legacy",
            "--number",
            "whatsapp:+966522222222",
            "--account-sid",
            &format!("AC{}", "c".repeat(32)),
            "--delivery-fee",
            "10",
            "--demo-menu",
        ],
    );
    upsert.ok();
    let list = ctl.run(&["tenant", "list"]);
    assert!(list.ok().contains("legacy") && list.ok().contains("bait-grill"));
    assert!(!list.ok().contains("legacy-token"));
    let bad = ctl.run_with(
        &[("TENANT_AUTH_TOKEN", "t")],
        &[
            "tenant",
            "upsert",
            "--slug",
            "xx",
            "--number",
            "nope",
            "--account-sid",
            "AC1",
        ],
    );
    assert!(bad.fails(1).contains("--number"));
    assert_eq!(ctl.run(&["no-such-command"]).code, 2);
}

#[tokio::test]
async fn replay_and_dead_letters_on_an_empty_namespace() {
    let ctl = Ctl::new().await;
    let (_, token) = ctl.restaurant("alpha");
    let topology = ctl.bus.bus.topology().clone();
    let replay = ctl.run(&[
        "replay",
        &format!(
            "{}.>",
            topology
                .stream_subjects(waiter_nats::StreamKind::Directory)
                .trim_end_matches(".>")
        ),
    ]);
    let line = replay.ok().lines().next().unwrap_or_default().to_string();
    assert!(
        line.contains("directory.account") && !line.contains(&token),
        "{line}"
    );
    ctl.bus
        .bus
        .ensure_streams(&[waiter_nats::StreamKind::DeadLetter])
        .await
        .unwrap();
    let dlq = ctl.run(&["dlq"]);
    dlq.ok();
    ctl.run(&["dlq-retry", "--all"]).ok();
    // Re-sending needs a choice: one letter or all of them.
    assert_eq!(ctl.run(&["dlq-retry"]).code, 2);
    assert_eq!(ctl.run(&["replay", "x.>", "--since", "ten"]).code, 1);
}

#[tokio::test]
async fn migrate_seals_tokens_an_older_version_stored_in_plain_text() {
    let ctl = Ctl::new().await;
    ctl.restaurant("alpha");
    // What 0100 leaves of a row written before tokens were sealed.
    sqlx::query(
        "UPDATE restaurants SET twilio_auth_token_plaintext = 'legacy-plain-token', \
            twilio_auth_token_key_id = NULL, twilio_auth_token_sealed = NULL",
    )
    .execute(&ctl.db.pool)
    .await
    .unwrap();
    let show = ctl.run(&["restaurant", "show", "--restaurant", "alpha"]);
    assert!(show.ok().contains("NOT SEALED"), "{}", show.ok());
    let without_key = ctl.run_with(&[("WAITER_SECRET_KEY", "")], &["migrate"]);
    assert!(
        without_key.fails(1).contains("set WAITER_SECRET_KEY"),
        "{}",
        without_key.stderr
    );
    let migrated = ctl.run(&["migrate"]);
    assert!(
        migrated.stderr.contains("sealed 1 auth token"),
        "{}",
        migrated.stderr
    );
    let (plain, key): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT twilio_auth_token_plaintext, twilio_auth_token_key_id FROM restaurants",
    )
    .fetch_one(&ctl.db.pool)
    .await
    .unwrap();
    assert_eq!((plain, key.as_deref()), (None, Some("test")));
    let r = waiter_migrations::restaurants::by_slug(&ctl.db.pool, "alpha")
        .await
        .unwrap()
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        r.open_auth_token(waiter_harness::Keyring::for_tests())
            .unwrap()
            .expose_secret(),
        "legacy-plain-token"
    );
}
