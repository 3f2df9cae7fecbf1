use std::fmt::Write;

use crate::common::{Ctl, EXAMPLE_CSV, EXAMPLE_JSON};

#[tokio::test]
async fn the_example_files_import_and_export_back_the_same() {
    let ctl = Ctl::new().await;
    ctl.restaurant_with_branches("bait-grill");
    let csv = ctl.file("menu.csv", EXAMPLE_CSV);
    let json = ctl
        .run(&[
            "--json",
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &csv,
        ])
        .json();
    assert_eq!(json["items_created"], 7);
    assert_eq!(json["categories_created"], 3);
    // Again: a no-op.
    let again = ctl.run(&["menu", "import", "--restaurant", "bait-grill", &csv]);
    assert!(again.ok().contains("nothing changed"), "{}", again.ok());
    let json = ctl
        .run(&[
            "--json",
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &csv,
        ])
        .json();
    assert_eq!(
        (
            json["items_unchanged"].as_u64(),
            json["items_updated"].as_u64()
        ),
        (Some(7), Some(0))
    );
    // Export writes the same files back.
    assert_eq!(
        ctl.run(&[
            "menu",
            "export",
            "--restaurant",
            "bait-grill",
            "--format",
            "csv"
        ])
        .ok(),
        EXAMPLE_CSV
    );
    assert_eq!(
        ctl.run(&[
            "menu",
            "export",
            "--restaurant",
            "bait-grill",
            "--format",
            "json"
        ])
        .ok(),
        EXAMPLE_JSON
    );
    // The JSON example into another restaurant gives the same menu.
    ctl.restaurant_with_branches("second");
    let json_file = ctl.file("menu.json", EXAMPLE_JSON);
    ctl.run(&["menu", "import", "--restaurant", "second", &json_file])
        .ok();
    assert_eq!(
        ctl.run(&["menu", "export", "--restaurant", "second"]).ok(),
        EXAMPLE_CSV
    );
}

#[tokio::test]
async fn a_file_with_several_errors_reports_them_all_and_changes_nothing() {
    let ctl = Ctl::new().await;
    ctl.restaurant_with_branches("bait-grill");
    ctl.run(&[
        "menu",
        "import",
        "--restaurant",
        "bait-grill",
        &ctl.file("menu.csv", EXAMPLE_CSV),
    ])
    .ok();
    let before = ctl
        .run(&["menu", "export", "--restaurant", "bait-grill"])
        .ok()
        .to_string();
    let broken = EXAMPLE_CSV
        .replace("32.00", "32.000")
        .replace(",10,yes,,,1", ",110,yes,downtown,,1")
        .replace("شاورما دجاج", "");
    let path = ctl.file("broken.csv", &broken);
    let failed = ctl.run(&["menu", "import", "--restaurant", "bait-grill", &path]);
    let err = failed.fails(1);
    for expected in [
        "broken.csv:2: price: \"32.000\" must be an amount",
        "broken.csv:3: discount_percent: \"110\"",
        "broken.csv:3: unavailable_at: \"downtown\" is not a branch of this restaurant (branches: olaya, al-malqa)",
        "broken.csv:5: name_ar: is required",
        "4 problem(s); nothing was imported",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert_eq!(
        ctl.run(&["menu", "export", "--restaurant", "bait-grill"])
            .ok(),
        before
    );
    // --check reads without writing.
    let checked = ctl.run(&[
        "menu",
        "import",
        "--restaurant",
        "bait-grill",
        "--check",
        &path,
    ]);
    assert!(checked.fails(1).contains("broken.csv:2"));
    let fine = ctl.run(&[
        "menu",
        "import",
        "--restaurant",
        "bait-grill",
        "--check",
        &ctl.file("ok.json", EXAMPLE_JSON),
    ]);
    assert!(
        fine.ok().contains("valid, 3 categories, 7 items"),
        "{}",
        fine.ok()
    );
    // Files that are not menus.
    assert!(ctl
        .run(&[
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &ctl.file("menu.txt", "x")
        ])
        .fails(1)
        .contains(".csv or .json"));
    assert!(ctl
        .run(&[
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            "/nonexistent/menu.csv"
        ])
        .fails(1)
        .contains("reading"));
    assert!(ctl
        .run(&[
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &ctl.file("e.json", "{\"categories\": []}")
        ])
        .fails(1)
        .contains("no items"));
}

#[tokio::test]
async fn items_missing_from_a_new_import_are_marked_unavailable_not_deleted() {
    let ctl = Ctl::new().await;
    ctl.restaurant_with_branches("bait-grill");
    ctl.run(&[
        "menu",
        "import",
        "--restaurant",
        "bait-grill",
        &ctl.file("menu.csv", EXAMPLE_CSV),
    ])
    .ok();
    let without_laban: String = EXAMPLE_CSV
        .lines()
        .filter(|l| !l.contains(",laban,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let smaller = without_laban.replace("11.00,0,yes,,,0", "12.00,0,yes,al-malqa,,0");
    let json = ctl
        .run(&[
            "--json",
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &ctl.file("smaller.csv", &smaller),
        ])
        .json();
    assert_eq!(json["items_marked_unavailable"], 1);
    assert_eq!(json["items_updated"], 1);
    let exported = ctl
        .run(&["menu", "export", "--restaurant", "bait-grill"])
        .ok()
        .to_string();
    let laban = exported
        .lines()
        .find(|l| l.contains(",laban,"))
        .expect("laban is kept");
    assert!(laban.contains(",no,"), "{laban}");
    let lemon = exported
        .lines()
        .find(|l| l.contains(",fresh-lemon-mint,"))
        .unwrap();
    assert!(
        lemon.contains("12.00") && lemon.contains("al-malqa"),
        "{lemon}"
    );
}

/// A 500-item Arabic/English menu: imported and timed (the figure is
/// printed, not asserted: a loaded machine must not fail the suite).
#[tokio::test]
async fn a_500_item_menu_imports_in_one_run() {
    let ctl = Ctl::new().await;
    ctl.restaurant_with_branches("bait-grill");
    let mut csv = String::from("category_key,category_en,category_ar,sku,name_en,name_ar,description_en,description_ar,price,discount_percent,available,unavailable_at,image_url,sort_order\n");
    for i in 0..500 {
        let c = i % 20;
        writeln!(
            csv,
            "cat-{c},Category {c},الفئة {c},sku-{i:04},Dish number {i},طبق رقم {i},\"Grilled, with rice and salad\",مشوي مع الأرز والسلطة,{}.{:02},{},yes,{},https://example.com/img/{i}.jpg,{i}",
            10 + i % 90,
            i % 100,
            i % 30,
            if i % 7 == 0 { "al-malqa" } else { "" }
        )
        .unwrap();
    }
    let path = ctl.file("big.csv", &csv);
    let json = ctl
        .run(&[
            "--json",
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &path,
        ])
        .json();
    assert_eq!(json["items_created"], 500);
    assert_eq!(json["categories_created"], 20);
    println!("500-item import: {} ms (first), ", json["elapsed_ms"]);
    let again = ctl
        .run(&[
            "--json",
            "menu",
            "import",
            "--restaurant",
            "bait-grill",
            &path,
        ])
        .json();
    assert_eq!(again["items_unchanged"], 500);
    println!(
        "500-item import: {} ms (again, unchanged)",
        again["elapsed_ms"]
    );
    let exported = ctl
        .run(&["menu", "export", "--restaurant", "bait-grill"])
        .ok()
        .to_string();
    assert_eq!(exported.lines().count(), 501);
}
