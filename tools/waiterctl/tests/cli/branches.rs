use crate::common::Ctl;

#[tokio::test]
async fn branches_are_added_listed_updated_and_removed() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let added = ctl.run(&[
        "branch",
        "add",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--name-en",
        "Olaya",
        "--name-ar",
        "العليا",
        "--latitude",
        "24.6937",
        "--longitude",
        "46.6853",
        "--radius-km",
        "8",
        "--offers",
        "both",
        "--hours",
        "sat-thu 12:00-23:30; fri 13:00-15:00,18:00-02:00",
    ]);
    assert!(added.ok().contains("added branch olaya"), "{}", added.ok());
    ctl.run(&[
        "branch",
        "add",
        "--restaurant",
        "bait-grill",
        "--code",
        "kiosk",
        "--name-en",
        "Kiosk",
        "--name-ar",
        "كشك",
        "--offers",
        "pickup",
    ])
    .ok();
    let list = ctl.run(&["branch", "list", "--restaurant", "bait-grill"]);
    let out = list.ok();
    assert!(
        out.contains("olaya") && out.contains("العليا") && out.contains("kiosk"),
        "{out}"
    );
    assert!(out.contains("mon-thu 12:00-23:30"), "{out}");
    assert!(
        out.contains("always"),
        "a branch without hours is always open: {out}"
    );
    assert!(
        out.contains("open") || out.contains("closed, opens"),
        "{out}"
    );
    let json = ctl
        .run(&["--json", "branch", "list", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(json[1]["code"], "kiosk");
    assert_eq!(json[1]["offers_delivery"], false);
    assert_eq!(json[0]["schedule"]["weekly"].as_array().unwrap().len(), 8);

    ctl.run(&[
        "branch",
        "update",
        "--restaurant",
        "bait-grill",
        "--code",
        "kiosk",
        "--radius-km",
        "3",
        "--offers",
        "both",
    ])
    .ok();
    let json = ctl
        .run(&["--json", "branch", "list", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(json[1]["radius_km"], 3.0);
    assert_eq!(json[1]["offers_delivery"], true);
    assert_eq!(json[1]["name_en"], "Kiosk", "unchanged");

    assert!(ctl
        .run(&[
            "branch",
            "remove",
            "--restaurant",
            "bait-grill",
            "--code",
            "kiosk"
        ])
        .ok()
        .contains("removed"));
    let json = ctl
        .run(&["--json", "branch", "list", "--restaurant", "bait-grill"])
        .json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    let all = ctl
        .run(&[
            "--json",
            "branch",
            "list",
            "--restaurant",
            "bait-grill",
            "--all",
        ])
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2, "a removed branch is kept");
    assert_eq!(all[1]["now"], "removed");
}

#[tokio::test]
async fn branch_errors_are_readable_and_change_nothing() {
    let ctl = Ctl::new().await;
    ctl.restaurant("bait-grill");
    let args = [
        "branch",
        "add",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--name-en",
        "Olaya",
        "--name-ar",
        "العليا",
    ];
    ctl.run(&args).ok();
    assert!(ctl
        .run(&args)
        .fails(1)
        .contains("branch with code \"olaya\" already"));
    let bad = ctl.run(&[
        "branch",
        "add",
        "--restaurant",
        "bait-grill",
        "--code",
        "X Y",
        "--latitude",
        "95",
        "--hours",
        "mon 9-5",
    ]);
    let err = bad.fails(1);
    for expected in [
        "--code",
        "--name-en is required",
        "--name-ar is required",
        "--latitude and --longitude go together",
    ] {
        assert!(err.contains(expected), "missing {expected:?}: {err}");
    }
    let bad = ctl.run(&[
        "branch",
        "update",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--hours",
        "funday 10:00-11:00",
    ]);
    assert!(bad.fails(1).contains("not a day"), "{}", bad.stderr);
    assert!(ctl
        .run(&[
            "branch",
            "update",
            "--restaurant",
            "bait-grill",
            "--code",
            "nope",
            "--radius-km",
            "2"
        ])
        .fails(1)
        .contains("no branch"));
    assert!(ctl
        .run(&["branch", "list", "--restaurant", "ghost"])
        .fails(1)
        .contains("no restaurant"));
    let bad = ctl.run(&[
        "branch",
        "add",
        "--restaurant",
        "bait-grill",
        "--code",
        "x",
        "--offers",
        "sometimes",
    ]);
    assert_eq!(bad.code, 2, "clap refuses an unknown value: {}", bad.stderr);
}

#[tokio::test]
async fn hours_and_closures_are_set_shown_and_removed() {
    let ctl = Ctl::new().await;
    ctl.restaurant_with_branches("bait-grill");
    let shown = ctl.run(&[
        "branch",
        "hours",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
    ]);
    assert!(shown.ok().contains("always"), "{}", shown.ok());
    let set = ctl.run(&[
        "branch",
        "hours",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--set",
        "daily 10:00-02:00",
    ]);
    assert!(
        set.ok().contains("daily 10:00-02:00") && set.ok().contains("Asia/Riyadh"),
        "{}",
        set.ok()
    );
    let closed = ctl.run(&[
        "branch",
        "close",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--from",
        "2099-03-19",
        "--to",
        "2099-03-21",
        "--note",
        "Eid",
    ]);
    assert!(
        closed.ok().contains("2099-03-19..2099-03-21 (Eid)"),
        "{}",
        closed.ok()
    );
    // New weekly hours keep the closure.
    ctl.run(&[
        "branch",
        "update",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--hours",
        "daily 11:00-23:00",
    ])
    .ok();
    let json = ctl
        .run(&[
            "--json",
            "branch",
            "hours",
            "--restaurant",
            "bait-grill",
            "--code",
            "olaya",
        ])
        .json();
    assert_eq!(json["hours"], "daily 11:00-23:00");
    assert_eq!(json["schedule"]["closures"][0]["note"], "Eid");
    assert!(ctl
        .run(&[
            "branch",
            "close",
            "--restaurant",
            "bait-grill",
            "--code",
            "olaya",
            "--from",
            "2099-03-21",
            "--to",
            "2099-03-19"
        ])
        .fails(1)
        .contains("before"));
    ctl.run(&[
        "branch",
        "reopen",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--from",
        "2099-03-19",
    ])
    .ok();
    assert!(ctl
        .run(&[
            "branch",
            "reopen",
            "--restaurant",
            "bait-grill",
            "--code",
            "olaya",
            "--from",
            "2099-03-19"
        ])
        .fails(1)
        .contains("no closure"));
    let always = ctl.run(&[
        "branch",
        "hours",
        "--restaurant",
        "bait-grill",
        "--code",
        "olaya",
        "--always",
    ]);
    assert!(always.ok().contains("always"));
    assert_eq!(
        ctl.run(&[
            "branch",
            "close",
            "--restaurant",
            "bait-grill",
            "--code",
            "olaya",
            "--from",
            "tomorrow"
        ])
        .code,
        2
    );
}
