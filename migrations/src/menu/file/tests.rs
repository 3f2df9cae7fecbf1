use super::*;

const EXAMPLE_CSV: &str = include_str!("../../../../docs/menu-example.csv");
const EXAMPLE_JSON: &str = include_str!("../../../../docs/menu-example.json");

fn codes() -> Vec<String> {
    vec!["olaya".into(), "al-malqa".into()]
}

fn read(text: &str, format: Format) -> Result<Menu, Problems> {
    let codes = codes();
    parse(
        "menu",
        text,
        format,
        &Rules {
            branch_codes: &codes,
        },
    )
}

#[test]
fn the_example_files_describe_the_same_menu() {
    let csv = read(EXAMPLE_CSV, Format::Csv).expect("example CSV");
    let json = read(EXAMPLE_JSON, Format::Json).expect("example JSON");
    assert_eq!(csv, json);
    assert_eq!(csv.categories.len(), 3);
    assert_eq!(csv.item_count(), 7);
    let kebab = &csv.categories[0].items[1];
    assert_eq!(
        (kebab.sku.as_str(), kebab.price, kebab.discount_percent),
        ("lamb-kebab", 4200, 10)
    );
    assert_eq!(kebab.name_ar, "كباب لحم");
}

#[test]
fn writing_and_reading_back_is_the_same_menu_in_both_formats() {
    let mut menu = read(EXAMPLE_CSV, Format::Csv).unwrap();
    menu.categories[1].items[0].unavailable_at = vec!["al-malqa".into(), "olaya".into()];
    menu.categories[1].items[1].available = false;
    menu.categories[2].items[0].description_en = "Lemon, \"mint\", ice\nno sugar".into();
    for format in [Format::Csv, Format::Json] {
        let text = write(&menu, format);
        assert_eq!(read(&text, format).unwrap(), menu, "{format:?}:\n{text}");
    }
    assert_eq!(
        to_json(&read(EXAMPLE_JSON, Format::Json).unwrap()),
        EXAMPLE_JSON
    );
}

#[test]
fn every_problem_of_a_csv_is_reported_with_its_line_and_field() {
    let text = "\u{feff}category_key,category_en,category_ar,sku,name_en,name_ar,price,discount_percent,available,unavailable_at,image_url\n\
        grills,Grills,المشويات,tawook,Tawook,طاووق,32.00,0,yes,,\n\
        grills,Grills,المشويات,kebab,Kebab,,12.345,150,maybe,downtown,http://x\n\
        drinks,Drinks,المشروبات,tawook,Laban,لبن,-5,,,,\n\
        grills,Grill,المشويات,bad sku,Mixed,مشكل,9,,,,\n";
    let problems = read(text, Format::Csv).unwrap_err();
    let report = problems.to_string();
    for expected in [
        "menu:3: name_ar: is required",
        "menu:3: price: \"12.345\" must be an amount like 32.50",
        "menu:3: discount_percent: \"150\" must be a whole number from 0 to 100",
        "menu:3: available: \"maybe\" must be yes or no",
        "menu:3: unavailable_at: \"downtown\" is not a branch of this restaurant (branches: olaya, al-malqa)",
        "menu:3: image_url: \"http://x\" must be an https:// URL",
        "menu:4: price: \"-5\" must be an amount",
        "menu:5: category_en/category_ar: category \"grills\" is named differently on line 2",
        "menu:5: sku: \"bad sku\" may only use letters",
        "menu: sku: \"tawook\" appears more than once",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    assert_eq!(problems.problems.len(), 10, "{report}");
}

#[test]
fn a_csv_header_is_checked_before_any_row() {
    let report = read(
        "category_key,category_en,sku,name_en,name_ar,prce\nx,X,a,A,ا,1\n",
        Format::Csv,
    )
    .unwrap_err()
    .to_string();
    assert!(report.contains("menu:1: prce: unknown column"), "{report}");
    assert!(
        report.contains("menu:1: category_ar: required column is missing"),
        "{report}"
    );
    assert!(
        report.contains("menu:1: price: required column is missing"),
        "{report}"
    );
}

#[test]
fn every_problem_of_a_json_file_is_reported_with_its_line_and_path() {
    let text = r#"{"categories": [
  {"key": "grills", "name_en": "Grills", "name_ar": "المشويات", "items": [
    {"sku": "tawook", "name_en": "Tawook", "name_ar": "طاووق", "price": 32},
    {"sku": "kebab", "name_en": "Kebab", "name_ar": "كباب", "price": "abc",
     "colour": "red"}
  ]},
  {"key": "grills", "name_en": "", "name_ar": "x", "items": [
    {"sku": "laban", "name_ar": "لبن", "price": 5.5, "unavailable_at": ["nowhere"]}
  ]}
]}"#;
    let report = read(text, Format::Json).unwrap_err().to_string();
    for expected in [
        "menu:4: price: \"abc\" must be an amount",
        "menu:4: categories[0].items[1].colour: unknown field",
        "menu:7: categories[1].key: \"grills\" appears twice",
        "menu:7: name_en: is required",
        "menu:8: name_en: is required",
        "menu:8: unavailable_at: \"nowhere\" is not a branch",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    let syntax = read("{\"categories\": [\n  {\"key\": }\n]}", Format::Json).unwrap_err();
    assert_eq!(syntax.problems[0].line, Some(2), "{syntax}");
}

#[test]
fn an_empty_menu_is_refused() {
    let report = read("{\"categories\": []}", Format::Json)
        .unwrap_err()
        .to_string();
    assert!(report.contains("no items"), "{report}");
}

#[test]
fn prices_are_read_and_written_in_major_units() {
    assert_eq!(parse_price("32"), Ok(3200));
    assert_eq!(parse_price("32.5"), Ok(3250));
    assert_eq!(parse_price("0.05"), Ok(5));
    for bad in ["", "1,50", "-1", "1.", ".5", "1.234", "1e3", "12 SAR"] {
        assert!(parse_price(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_price(3250), "32.50");
    assert_eq!(format_price(5), "0.05");
}
