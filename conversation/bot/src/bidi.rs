//! Right-to-left safety for Arabic messages.
//!
//! WhatsApp picks a paragraph's direction from its first strong character,
//! so an Arabic line that starts with a price, an order number or a Latin
//! name would be laid out left-to-right. Texts wrap embedded left-to-right
//! runs in isolates ([`ltr`], [`auto`]) and [`rtl_lines`] adds a right-to-left
//! mark to any Arabic line that would still not start right-to-left.
//!
//! Links are the exception: a link stands alone on its line with nothing
//! invisible next to it, because phone linkifiers take any non-space
//! character after a URL (a U+2069 included) as part of it.

/// LEFT-TO-RIGHT ISOLATE.
pub const LRI: char = '\u{2066}';
/// FIRST STRONG ISOLATE.
pub const FSI: char = '\u{2068}';
/// POP DIRECTIONAL ISOLATE.
pub const PDI: char = '\u{2069}';
/// RIGHT-TO-LEFT MARK.
pub const RLM: char = '\u{200F}';

/// Wraps a left-to-right run (a price, an order number, a link).
pub fn ltr(s: &str) -> String {
    format!("{LRI}{s}{PDI}")
}

/// Wraps a run of unknown direction (a name, an address the customer typed).
pub fn auto(s: &str) -> String {
    format!("{FSI}{s}{PDI}")
}

fn is_rtl_letter(c: char) -> bool {
    matches!(c,
        '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        && c.is_alphabetic()
}

/// The direction of a line's first strong character outside isolates:
/// `Some(true)` right-to-left, `Some(false)` left-to-right, `None` if the
/// line has none (digits, punctuation, emoji, isolated runs only).
pub fn first_strong_rtl(line: &str) -> Option<bool> {
    let mut depth = 0usize;
    for c in line.chars() {
        match c {
            '\u{2066}'..='\u{2068}' => depth += 1,
            PDI => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            RLM | '\u{061C}' => return Some(true),
            '\u{200E}' => return Some(false),
            _ if is_rtl_letter(c) => return Some(true),
            _ if c.is_alphabetic() => return Some(false),
            _ => {}
        }
    }
    None
}

/// Whether a line is a link standing alone (left as it is).
pub fn is_link_line(line: &str) -> bool {
    let line = line.trim();
    (line.starts_with("https://") || line.starts_with("http://")) && !line.contains(' ')
}

/// Prefixes RLM to every non-empty line that would not start right-to-left
/// (link lines excepted).
pub fn rtl_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if !line.trim().is_empty() && !is_link_line(line) && first_strong_rtl(line) != Some(true) {
            out.push(RLM);
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn lines_starting_with_numbers_or_latin_get_a_mark() {
        assert_eq!(first_strong_rtl("مرحبا 12"), Some(true));
        assert_eq!(first_strong_rtl("12 مرحبا"), Some(true));
        assert_eq!(first_strong_rtl("Pepsi مرحبا"), Some(false));
        assert_eq!(
            first_strong_rtl(&format!("{} مرحبا", ltr("Pepsi"))),
            Some(true)
        );
        assert_eq!(first_strong_rtl("⭐ 12"), None);
        let fixed = rtl_lines("مرحبا\nPepsi\n\n12\nhttps://example.com/a?b=1");
        assert_eq!(
            fixed,
            format!("مرحبا\n{RLM}Pepsi\n\n{RLM}12\nhttps://example.com/a?b=1")
        );
    }
}
