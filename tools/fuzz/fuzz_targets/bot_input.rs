//! A customer's text through the bot's input normalisation: folding,
//! numbers (Arabic-Indic digits included), stars, free text cut to size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waiter_bot::normalize;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let folded = normalize::fold(&text);
    assert_eq!(normalize::fold(&folded), folded, "folding is idempotent");
    let _ = normalize::words(&folded);
    let _ = normalize::parse_number(&text);
    let _ = normalize::parse_number_lenient(&text);
    let _ = normalize::star_count(&text);
    let cleaned = normalize::clean_free_text(&text, 200);
    assert!(cleaned.chars().count() <= 200);
    let _ = normalize::name_matches("Lamb Kebab كباب", &text);
});
