//! Reading what customers type: case, Arabic diacritics and letter variants,
//! Latin accents, Arabic-Indic digits.

/// Arabic-Indic (U+0660–0669) and Eastern Arabic-Indic (U+06F0–06F9) digits
/// as ASCII.
fn ascii_digit(c: char) -> char {
    match c {
        '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
        '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
        _ => c,
    }
}

fn fold_latin(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è'..='ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ì'..='ï' | 'ī' | 'į' | 'ı' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò'..='ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ù'..='ü' | 'ū' | 'ů' | 'ű' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' | 'ś' => 's',
        'ž' | 'ź' | 'ż' => 'z',
        _ => c,
    }
}

/// Characters that carry no meaning for matching: Arabic short vowels and
/// marks, tatweel, combining accents, zero-width and direction controls,
/// emoji variation selectors.
fn is_ignorable(c: char) -> bool {
    matches!(c,
        '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{06D6}'..='\u{06ED}'
        | '\u{0640}'
        | '\u{0300}'..='\u{036F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{061C}'
        | '\u{FE0E}'
        | '\u{FE0F}')
}

/// Lowercase, without diacritics, Arabic letter variants unified
/// (أ إ آ ٱ → ا, ى → ي, ة → ه, ؤ → و, ئ → ي), digits in ASCII, anything
/// that is not a letter or digit turned into single spaces, trimmed.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if is_ignorable(c) {
            continue;
        }
        let c = match c {
            'أ' | 'إ' | 'آ' | 'ٱ' => 'ا',
            'ى' => 'ي',
            'ة' => 'ه',
            'ؤ' => 'و',
            'ئ' => 'ي',
            _ => ascii_digit(c),
        };
        for lc in c.to_lowercase() {
            let lc = fold_latin(lc);
            if lc.is_alphanumeric() {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(lc);
            } else {
                pending_space = true;
            }
        }
    }
    out
}

/// Words of a folded text, with the Arabic article "ال" dropped from longer
/// words so "الشاورما" finds "شاورما".
pub fn words(folded: &str) -> Vec<&str> {
    folded
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| match w.strip_prefix("ال") {
            Some(rest) if rest.chars().count() >= 2 => rest,
            _ => w,
        })
        .collect()
}

/// Whether every word of `query` occurs in `name` (both raw texts).
pub fn name_matches(name: &str, query: &str) -> bool {
    let name = fold(name);
    let query = fold(query);
    let q = words(&query);
    if q.is_empty() {
        return false;
    }
    let n = words(&name);
    q.iter().all(|qw| n.iter().any(|nw| nw.contains(qw)))
}

/// A message that is just a number ("3", "٣", "#3", "3.", "x3"), as a
/// number; anything else is not a number.
pub fn parse_number(s: &str) -> Option<u32> {
    let digits: String = s
        .trim()
        .chars()
        .filter(|c| !is_ignorable(*c))
        .map(ascii_digit)
        .filter(|c| !matches!(c, '#' | '.' | ')' | 'x' | 'X' | '×' | '*' | ' ' | '-'))
        .collect();
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A number with a few words around it ("2 please", "٢ حبة"): one run of
/// digits and at most two other words. Used where a number is the expected
/// answer (the quantity).
pub fn parse_number_lenient(s: &str) -> Option<u32> {
    if let Some(n) = parse_number(s) {
        return Some(n);
    }
    let folded = fold(s);
    let tokens: Vec<&str> = folded.split(' ').filter(|t| !t.is_empty()).collect();
    let numbers: Vec<&&str> = tokens
        .iter()
        .filter(|t| t.chars().all(|c| c.is_ascii_digit()))
        .collect();
    if numbers.len() != 1 || tokens.len() > 3 {
        return None;
    }
    if tokens
        .iter()
        .any(|t| !t.chars().all(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_ascii_digit()))
    {
        return None;
    }
    parse_number(numbers[0])
}

/// A message made only of stars ("⭐⭐⭐⭐", "★★★"), as their count.
pub fn star_count(s: &str) -> Option<u32> {
    let mut n = 0;
    for c in s.chars() {
        match c {
            '⭐' | '★' | '🌟' => n += 1,
            c if c.is_whitespace() || is_ignorable(c) => {}
            _ => return None,
        }
    }
    (n > 0).then_some(n)
}

/// Trims and bounds a free text the customer wrote (an address, a comment).
pub fn clean_free_text(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    cleaned.chars().take(max_chars).collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn folds_case_diacritics_and_letter_variants() {
        assert_eq!(fold("  Café  CRÈME! "), "cafe creme");
        assert_eq!(fold("شَاوِرْمَا"), "شاورما");
        assert_eq!(fold("إلغاء"), "الغاء");
        assert_eq!(fold("القائمة"), "القايمه");
        assert_eq!(fold("عربى"), "عربي");
        assert_eq!(fold("مـــرحبا"), "مرحبا");
        assert_eq!(fold("٣ حبات"), "3 حبات");
    }

    #[test]
    fn numbers_in_both_digit_sets() {
        assert_eq!(parse_number("3"), Some(3));
        assert_eq!(parse_number(" ٣ "), Some(3));
        assert_eq!(parse_number("۱۲"), Some(12));
        assert_eq!(parse_number("#2"), Some(2));
        assert_eq!(parse_number("2."), Some(2));
        assert_eq!(parse_number("x3"), Some(3));
        assert_eq!(parse_number("3 please"), None);
        assert_eq!(parse_number_lenient("3 please"), Some(3));
        assert_eq!(parse_number_lenient("٢ حبة"), Some(2));
        assert_eq!(parse_number_lenient("2 or 3"), None);
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number(""), None);
    }

    #[test]
    fn names_match_by_words_in_any_order() {
        assert!(name_matches("Chicken Shawarma", "shawarma"));
        assert!(name_matches("Chicken Shawarma", "SHAWARMA chicken"));
        assert!(name_matches("شاورما دجاج", "الشاورما"));
        assert!(name_matches("لفافة فلافل", "فلافل"));
        assert!(!name_matches("Laban", "lemon"));
        assert!(!name_matches("Laban", "  "));
    }

    #[test]
    fn stars() {
        assert_eq!(star_count("⭐⭐⭐⭐"), Some(4));
        assert_eq!(star_count("⭐️⭐️"), Some(2));
        assert_eq!(star_count("⭐ good"), None);
    }
}
