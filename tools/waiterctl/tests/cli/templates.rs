use crate::common::Ctl;

fn sid(n: u8) -> String {
    format!("HX{:032x}", n)
}

#[tokio::test]
async fn templates_are_registered_listed_checked_and_removed() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let check = ctl.run(&["templates", "check", "--restaurant", "bait-grill"]);
    let out = check.ok();
    assert!(out.contains("numbered text (fallback)"), "{out}");
    assert!(out.contains("cannot: no approved template"), "{out}");
    assert!(
        out.contains("34 message(s) fall back to numbered text; 8 cannot be sent outside"),
        "{out}"
    );
    assert_eq!(ctl.run(&["templates", "check", "--strict"]).code, 1);

    let set = ctl.run(&[
        "templates",
        "set",
        "--restaurant",
        "bait-grill",
        "--name",
        "categories",
        "--language",
        "both",
        "--sid",
        &sid(1),
    ]);
    assert!(set.ok().contains("categories (ar, en)"), "{}", set.ok());
    for name in ["rating_prompt", "order_update", "ticket", "staff_reply"] {
        ctl.run(&[
            "templates",
            "set",
            "--restaurant",
            "bait-grill",
            "--name",
            name,
            "--language",
            "both",
            "--sid",
            &sid(2),
            "--approved",
        ])
        .ok();
    }
    ctl.run(&[
        "templates",
        "set",
        "--restaurant",
        "bait-grill",
        "--name",
        "rating_prompt",
        "--language",
        "en",
        "--sid",
        &sid(3),
    ])
    .ok();
    let list = ctl
        .run(&["--json", "templates", "list", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(list.as_array().unwrap().len(), 10);
    let findings = ctl
        .run(&["--json", "templates", "check", "--restaurant", "bait-grill"])
        .json();
    let find = |name: &str, lang: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name && f["language"] == lang)
            .cloned()
            .unwrap()
    };
    assert_eq!(find("categories", "ar")["in_session"], "interactive");
    assert_eq!(
        find("rating_prompt", "ar")["outside_window"],
        "approved template"
    );
    assert_eq!(
        find("rating_prompt", "en")["outside_window"],
        "cannot: template not approved"
    );
    assert_eq!(find("ticket", "en")["outside_window"], "approved template");
    assert_eq!(
        find("staff_reply", "ar")["outside_window"],
        "approved template"
    );
    assert_eq!(
        find("rating_list", "en")["outside_window"],
        "never (list pickers are in-session only)"
    );
    assert_eq!(
        ctl.run(&[
            "templates",
            "check",
            "--restaurant",
            "bait-grill",
            "--strict"
        ])
        .code,
        1,
        "rating_prompt en is not approved"
    );
    ctl.run(&[
        "templates",
        "set",
        "--restaurant",
        "bait-grill",
        "--name",
        "rating_prompt",
        "--language",
        "en",
        "--sid",
        &sid(3),
        "--approved",
    ])
    .ok();
    ctl.run(&[
        "templates",
        "check",
        "--restaurant",
        "bait-grill",
        "--strict",
    ])
    .ok();

    assert!(ctl
        .run(&[
            "templates",
            "remove",
            "--restaurant",
            "bait-grill",
            "--name",
            "categories",
            "--language",
            "ar"
        ])
        .ok()
        .contains("removed 1"));
    assert!(ctl
        .run(&[
            "templates",
            "remove",
            "--restaurant",
            "bait-grill",
            "--name",
            "categories",
            "--language",
            "ar"
        ])
        .fails(1)
        .contains("has no categories template"));
}

#[tokio::test]
async fn template_errors_name_the_rule() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let args = |name: &str, sid: &str| {
        vec![
            "templates",
            "set",
            "--restaurant",
            "bait-grill",
            "--name",
            name,
            "--language",
            "en",
            "--sid",
        ]
        .into_iter()
        .map(str::to_string)
        .chain([sid.to_string()])
        .collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| ctl.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(args("greeting", &sid(1)))
        .fails(1)
        .contains("is not a message (messages: fulfilment, branch"));
    assert!(run(args("categories", "HX12"))
        .fails(1)
        .contains("HX followed by 32 hex digits"));
    let mut approved_list = args("rating_list", &sid(1));
    approved_list.push("--approved".into());
    assert!(run(approved_list)
        .fails(1)
        .contains("never approves list pickers"));
    assert_eq!(
        ctl.run(&[
            "templates",
            "set",
            "--restaurant",
            "bait-grill",
            "--name",
            "cart",
            "--language",
            "fr",
            "--sid",
            &sid(1)
        ])
        .code,
        2
    );
    assert!(ctl
        .run(&["--json", "templates", "list", "--restaurant", "bait-grill"])
        .json()
        .as_array()
        .unwrap()
        .is_empty());
}
