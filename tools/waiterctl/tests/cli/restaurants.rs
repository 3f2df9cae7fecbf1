use crate::common::Ctl;

#[tokio::test]
async fn a_restaurant_is_created_shown_and_listed_without_its_token() {
    let ctl = Ctl::new().await;
    let (account, token) = ctl.restaurant("bait-grill");
    let show = ctl.run(&["restaurant", "show", "--restaurant", "bait-grill"]);
    let out = show.ok();
    assert!(
        out.contains("bait-grill") && out.contains("مشويات البيت"),
        "{out}"
    );
    assert!(out.contains("sealed (key test)"), "{out}");
    assert!(
        out.contains("Asia/Riyadh") && out.contains(&account),
        "{out}"
    );
    assert!(!out.contains(&token), "the token is never printed");
    let json = ctl.run(&["--json", "restaurant", "list"]).json();
    assert_eq!(json[0]["slug"], "bait-grill");
    assert_eq!(json[0]["status"], "active");
    assert!(!json.to_string().contains(&token));
    let table = ctl.run(&["restaurant", "list"]);
    assert!(
        table.ok().contains("bait-grill") && table.ok().contains("active"),
        "{}",
        table.ok()
    );
    // The token never reached the database in plain text.
    let stored: (Vec<u8>, Option<String>) = sqlx::query_as(
        "SELECT twilio_auth_token_sealed, twilio_auth_token_plaintext FROM restaurants",
    )
    .fetch_one(&ctl.db.pool)
    .await
    .unwrap();
    assert!(stored.1.is_none());
    assert!(!stored.0.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn create_refuses_bad_or_missing_settings_all_at_once_and_changes_nothing() {
    let ctl = Ctl::new().await;
    let err = ctl.run(&[
        "restaurant",
        "create",
        "--slug",
        "Bad Slug",
        "--number",
        "0500",
    ]);
    let err = err.fails(1);
    for expected in [
        "--slug",
        "--account-sid is required",
        "--auth-token (or --auth-token-stdin, or TENANT_AUTH_TOKEN) is required",
        "--time-zone is required",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    let err = ctl.run_with(
        &[("TENANT_AUTH_TOKEN", "t")],
        &[
            "restaurant",
            "create",
            "--slug",
            "x1",
            "--number",
            "0500",
            "--account-sid",
            "AC1",
            "--time-zone",
            "Mars/Base",
            "--language",
            "fr",
            "--currency",
            "sar",
            "--delivery-fee",
            "ten",
        ],
    );
    let err = err.fails(1);
    for expected in [
        "--number",
        "--account-sid",
        "IANA",
        "--language",
        "--currency",
        "--delivery-fee",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    assert!(ctl.run(&["restaurant", "list"]).ok().contains("(none)"));
    // A slug or number used twice.
    ctl.restaurant("one");
    let again = ctl.run_with(
        &[("TENANT_AUTH_TOKEN", "t")],
        &[
            "restaurant",
            "create",
            "--slug",
            "one",
            "--number",
            "whatsapp:+966511111111",
            "--account-sid",
            &format!("AC{}", "1".repeat(32)),
            "--time-zone",
            "UTC",
        ],
    );
    assert!(
        again.fails(1).contains("exists already"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn update_changes_only_the_given_settings() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let before = ctl
        .run(&["--json", "restaurant", "show", "--restaurant", "bait-grill"])
        .json();
    let done = ctl.run(&[
        "restaurant",
        "update",
        "--restaurant",
        "bait-grill",
        "--delivery-fee",
        "12.50",
        "--support-contact",
        "+966500000009",
        "--staff-number",
        "+966500000010",
        "--promo",
        "https://example.com/a",
        "--promo",
        "https://example.com/b",
        "--bot-idle-resume-minutes",
        "30",
    ]);
    assert!(
        done.ok().contains("delivery_fee") && done.ok().contains("staff_whatsapp"),
        "{}",
        done.ok()
    );
    let after = ctl
        .run(&["--json", "restaurant", "show", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(after["delivery_fee"], "12.50");
    assert_eq!(after["support_contact"], "+966500000009");
    assert_eq!(after["promo_links"].as_array().unwrap().len(), 2);
    assert_eq!(after["bot_idle_resume_minutes"], 30);
    for unchanged in [
        "name_en",
        "name_ar",
        "whatsapp_number",
        "currency",
        "time_zone",
        "auth_token",
        "min_delivery_order",
    ] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    // An empty value clears an optional setting.
    ctl.run(&[
        "restaurant",
        "update",
        "--restaurant",
        "bait-grill",
        "--support-contact",
        "",
    ])
    .ok();
    let cleared = ctl
        .run(&["--json", "restaurant", "show", "--restaurant", "bait-grill"])
        .json();
    assert!(cleared["support_contact"].is_null());
    // Errors: nothing given, bad value, unknown restaurant.
    assert!(ctl
        .run(&["restaurant", "update", "--restaurant", "bait-grill"])
        .fails(1)
        .contains("nothing to change"));
    assert!(ctl
        .run(&[
            "restaurant",
            "update",
            "--restaurant",
            "bait-grill",
            "--outbound-rate",
            "0"
        ])
        .fails(1)
        .contains("--outbound-rate"));
    assert!(ctl
        .run(&["restaurant", "show", "--restaurant", "nope"])
        .fails(1)
        .contains("no restaurant \"nope\""));
}

#[tokio::test]
async fn a_new_token_is_sealed_and_put_in_the_tenant_directory() {
    let ctl = Ctl::new().await;
    let (account, _) = ctl.restaurant("bait-grill");
    // The variable is for new restaurants only: an update ignores it.
    let ignored = ctl.run_with(
        &[("TENANT_AUTH_TOKEN", "not-this-one")],
        &["restaurant", "update", "--restaurant", "bait-grill"],
    );
    assert!(ignored.fails(1).contains("nothing to change"));
    let updated = ctl
        .command()
        .args([
            "restaurant",
            "update",
            "--restaurant",
            "bait-grill",
            "--auth-token-stdin",
        ])
        .write_stdin("brand-new-token\n")
        .output()
        .unwrap();
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    assert!(String::from_utf8_lossy(&updated.stdout).contains("twilio_auth_token"));
    let (cache, shutdown) = ctl
        .directory(waiter_harness::Keyring::for_tests().clone())
        .await;
    use secrecy::ExposeSecret;
    assert_eq!(
        cache.auth_token(&account).unwrap().expose_secret(),
        "brand-new-token"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn disable_and_enable_say_what_changed() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    assert!(ctl
        .run(&["restaurant", "disable", "--restaurant", "bait-grill"])
        .ok()
        .contains("disabled"));
    assert!(ctl
        .run(&["restaurant", "disable", "--restaurant", "bait-grill"])
        .ok()
        .contains("already disabled"));
    let json = ctl
        .run(&["--json", "restaurant", "show", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(json["status"], "disabled");
    assert!(ctl
        .run(&["restaurant", "enable", "--restaurant", "bait-grill"])
        .ok()
        .contains("enabled"));
    assert!(ctl
        .run(&["restaurant", "disable", "--restaurant", "ghost"])
        .fails(1)
        .contains("no restaurant"));
}
