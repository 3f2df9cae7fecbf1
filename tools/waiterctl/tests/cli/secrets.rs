use crate::common::Ctl;

#[tokio::test]
async fn rotation_seals_every_token_under_the_new_key_and_the_old_one_is_no_longer_needed() {
    let ctl = Ctl::new().await;
    let (account_a, _) = ctl.restaurant("alpha");
    ctl.restaurant("beta");
    let generated = ctl.run(&["secrets", "generate-key", "--id", "k2"]);
    let new_key = generated.ok().trim().to_string();
    assert!(
        new_key.starts_with("k2:") && new_key.len() > 40,
        "{new_key}"
    );
    assert!(ctl
        .run(&["secrets", "generate-key", "--id", "bad id"])
        .fails(1)
        .contains("--id"));

    let status = ctl.run(&["secrets", "status"]);
    assert!(
        status.ok().contains("test") && status.ok().contains('2'),
        "{}",
        status.ok()
    );
    let both = format!("{new_key},{}", ctl.keys);
    let rotated = ctl
        .run_with(
            &[("WAITER_SECRET_KEY", &both)],
            &["--json", "secrets", "rotate"],
        )
        .json();
    assert_eq!(rotated["resealed"], 2);
    assert_eq!(rotated["primary"], "k2");
    assert_eq!(rotated["by_key"], serde_json::json!([["k2", 2]]));
    // Again: nothing left to do.
    let again = ctl.run_with(&[("WAITER_SECRET_KEY", &both)], &["secrets", "rotate"]);
    assert!(
        again.ok().contains("0 token(s) sealed under key k2"),
        "{}",
        again.ok()
    );

    // Only the new key from now on: status sees every token under a loaded key,
    // and a token still opens (an update of the account re-seals with it).
    let status = ctl
        .run_with(
            &[("WAITER_SECRET_KEY", &new_key)],
            &["--json", "secrets", "status"],
        )
        .json();
    assert_eq!(
        status,
        serde_json::json!([{ "key_id": "k2", "tokens": 2, "loaded": true, "primary": true }])
    );
    let moved = ctl.run_with(
        &[("WAITER_SECRET_KEY", &new_key)],
        &[
            "restaurant",
            "update",
            "--restaurant",
            "alpha",
            "--account-sid",
            &format!("AC{}", "b".repeat(32)),
        ],
    );
    assert!(moved.ok().contains("twilio_auth_token"), "{}", moved.ok());
    // The directory holds the new sealing for every account.
    let new_ring = waiter_harness::Keyring::from_value(Some(&new_key)).unwrap();
    let (cache, shutdown) = ctl.directory(new_ring).await;
    assert!(cache.auth_token(&format!("AC{}", "b".repeat(32))).is_some());
    assert!(
        cache.auth_token(&account_a).is_none(),
        "the old account is removed from the directory"
    );
    assert_eq!(cache.len(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn commands_that_need_the_key_say_so() {
    let ctl = Ctl::new().await;
    ctl.restaurant("alpha");
    let no_key = ctl.run_with(
        &[("WAITER_SECRET_KEY", ""), ("TENANT_AUTH_TOKEN", "t")],
        &["secrets", "rotate"],
    );
    assert!(
        no_key.fails(1).contains("WAITER_SECRET_KEY is not set"),
        "{}",
        no_key.stderr
    );
    let bad = ctl.run_with(&[("WAITER_SECRET_KEY", "k1:AAAA")], &["secrets", "rotate"]);
    assert!(bad.fails(1).contains("not 32"), "{}", bad.stderr);
    // Without the key that sealed them, tokens cannot be re-sealed: said per restaurant.
    let other = waiter_secrets::generate_key_entry("other");
    let wrong = ctl.run_with(&[("WAITER_SECRET_KEY", &other)], &["secrets", "rotate"]);
    assert!(
        wrong.fails(1).contains("alpha") && wrong.stderr.contains("not in WAITER_SECRET_KEY"),
        "{}",
        wrong.stderr
    );
    let status = ctl.run_with(&[("WAITER_SECRET_KEY", &other)], &["secrets", "status"]);
    assert!(
        status.ok().contains("run `waiterctl secrets rotate`"),
        "{}",
        status.ok()
    );
}
