//! Building interactive replies within WhatsApp's limits.
//!
//! Every question is a [`Reply::Interactive`] with a `template` name (below),
//! the ContentSid configured for it (`content_templates["<name>_<lang>"]`,
//! else `content_templates["<name>"]`), `variables`, the `choices`, and a
//! `fallback`: the same question as numbered text, sent when no ContentSid
//! is configured. Variables, for a content template built on them:
//! `"1"` = the body; for the i-th choice (0-based) `2+3i` = its id,
//! `3+3i` = its title, `4+3i` = its description ("" if none).
//!
//! Lengths are counted in UTF-16 code units (what Twilio and WhatsApp count;
//! an emoji may be two), so a title that fits here fits there.

use std::collections::BTreeMap;

use crate::bidi;
use crate::ids::ChoiceId;
use crate::texts;
use crate::{Choice, Lang, Reply, RestaurantInfo};

pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE: usize = 20;
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_ROW_TITLE: usize = 24;
pub const MAX_ROW_DESCRIPTION: usize = 72;
pub const MAX_ID: usize = 200;
pub const MAX_BODY: usize = 1024;
pub const MAX_TEXT: usize = 1600;

/// Template names (keys of `RestaurantInfo::content_templates`).
pub mod templates {
    /// Greeting: delivery / pickup / other language (quick reply).
    pub const FULFILMENT: &str = "fulfilment";
    /// Pickup branch (list).
    pub const BRANCH: &str = "branch";
    /// Share a location: pickup instead / talk to staff (quick reply).
    pub const LOCATION: &str = "location";
    /// Menu categories (list).
    pub const CATEGORIES: &str = "categories";
    /// Items of a category or a search (list).
    pub const ITEMS: &str = "items";
    /// Quantity 1 / 2 / 3 (quick reply; any number may be typed).
    pub const QUANTITY: &str = "quantity";
    /// After adding: add more / view cart / checkout (quick reply).
    pub const ADDED: &str = "added";
    /// The cart: checkout / add more / remove (quick reply).
    pub const CART: &str = "cart";
    /// Which item to remove (list).
    pub const REMOVE: &str = "remove";
    /// Below the delivery minimum: add more / pickup / view cart (quick reply).
    pub const MIN_ORDER: &str = "min_order";
    /// Cash / online (quick reply).
    pub const PAYMENT: &str = "payment";
    /// Place order / edit cart / cancel (quick reply).
    pub const CONFIRM: &str = "confirm";
    /// After an order: status / new order / help (quick reply).
    pub const AFTER_ORDER: &str = "after_order";
    /// English / العربية (quick reply).
    pub const LANGUAGE: &str = "language";
    /// Delivered: rate now / later / help (quick reply; may be an approved
    /// template, the only rating message sent outside the 24-hour window).
    pub const RATING_PROMPT: &str = "rating_prompt";
    /// 1–5 stars (list; never outside the 24-hour window).
    pub const RATING_LIST: &str = "rating_list";
    /// Comment or skip (quick reply).
    pub const RATING_COMMENT: &str = "rating_comment";
    /// An order status notice outside the 24-hour window (approved
    /// template, no choices; variable "1" = the notice).
    pub const ORDER_UPDATE: &str = "order_update";

    /// How a template is shown.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        QuickReply,
        ListPicker,
        /// Text only (variable "1").
        Notice,
    }

    impl Kind {
        pub fn label(self) -> &'static str {
            match self {
                Kind::QuickReply => "quick reply",
                Kind::ListPicker => "list picker",
                Kind::Notice => "notice",
            }
        }
    }

    /// One message the bot may send as a content template.
    #[derive(Debug, Clone, Copy)]
    pub struct Spec {
        pub name: &'static str,
        pub kind: Kind,
        /// Sent outside the 24-hour window too (then only if approved).
        pub outside_window: bool,
    }

    const fn spec(name: &'static str, kind: Kind, outside_window: bool) -> Spec {
        Spec {
            name,
            kind,
            outside_window,
        }
    }

    /// Every template the bot uses, in dialogue order.
    pub const ALL: &[Spec] = &[
        spec(FULFILMENT, Kind::QuickReply, false),
        spec(BRANCH, Kind::ListPicker, false),
        spec(LOCATION, Kind::QuickReply, false),
        spec(CATEGORIES, Kind::ListPicker, false),
        spec(ITEMS, Kind::ListPicker, false),
        spec(QUANTITY, Kind::QuickReply, false),
        spec(ADDED, Kind::QuickReply, false),
        spec(CART, Kind::QuickReply, false),
        spec(REMOVE, Kind::ListPicker, false),
        spec(MIN_ORDER, Kind::QuickReply, false),
        spec(PAYMENT, Kind::QuickReply, false),
        spec(CONFIRM, Kind::QuickReply, false),
        spec(AFTER_ORDER, Kind::QuickReply, false),
        spec(LANGUAGE, Kind::QuickReply, false),
        spec(RATING_PROMPT, Kind::QuickReply, true),
        spec(RATING_LIST, Kind::ListPicker, false),
        spec(RATING_COMMENT, Kind::QuickReply, false),
        spec(ORDER_UPDATE, Kind::Notice, true),
    ];
}

/// List-picker templates; every other template is quick-reply buttons.
pub const LIST_TEMPLATES: &[&str] = &[
    templates::BRANCH,
    templates::CATEGORIES,
    templates::ITEMS,
    templates::REMOVE,
    templates::RATING_LIST,
];

pub fn is_list_template(name: &str) -> bool {
    LIST_TEMPLATES.contains(&name)
}

/// Length as WhatsApp counts it (UTF-16 code units).
pub fn len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `max` UTF-16 units, ending with "…" if cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    let mut out = out.trim_end().to_string();
    out.push('…');
    out
}

/// Cuts a long message at a line boundary (so no link is cut in half),
/// ending with "…"; a first line longer than `max` is cut inside.
pub fn truncate_lines(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for line in s.split('\n') {
        let extra = usize::from(!out.is_empty()) + len(line);
        // Room for "\n…" and a direction mark before it.
        if len(&out) + extra + 3 > max {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    if out.trim().is_empty() {
        return truncate(s, max);
    }
    out.push_str("\n…");
    out
}

/// One option of a question.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub id: ChoiceId,
    pub title: String,
    pub description: Option<String>,
}

impl Opt {
    pub fn new(id: ChoiceId, title: impl Into<String>) -> Opt {
        Opt {
            id,
            title: title.into(),
            description: None,
        }
    }

    pub fn described(id: ChoiceId, title: impl Into<String>, description: String) -> Opt {
        let description = (!description.trim().is_empty()).then_some(description);
        Opt {
            id,
            title: title.into(),
            description,
        }
    }
}

/// A question: what the current step asks and its options, in order (a
/// typed number n means the n-th option).
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub template: &'static str,
    pub body: String,
    pub options: Vec<Opt>,
}

/// How the fallback text lets the customer answer.
pub(crate) enum Fallback {
    /// Numbered options and "reply with the number".
    Numbered,
    /// A hint of words to type (for messages that do not change the step,
    /// where a typed number belongs to the step's question).
    Hint(String),
}

/// One page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub start: usize,
    pub end: usize,
    pub page: usize,
    pub pages: usize,
}

/// Splits `len` rows into pages that fit a list with `reserved` extra rows
/// (back, cart), keeping a row for "more" when there are several pages.
pub(crate) fn paginate(len: usize, page: usize, reserved: usize) -> Page {
    let capacity = MAX_LIST_ROWS.saturating_sub(reserved).max(2);
    if len <= capacity {
        return Page {
            start: 0,
            end: len,
            page: 0,
            pages: 1,
        };
    }
    let per = capacity - 1;
    let pages = len.div_ceil(per);
    let page = page % pages;
    let start = page * per;
    Page {
        start,
        end: (start + per).min(len),
        page,
        pages,
    }
}

/// The ContentSid configured for a template in a language.
pub fn content_sid(restaurant: &RestaurantInfo, template: &str, lang: Lang) -> Option<String> {
    let templates = &restaurant.content_templates;
    templates
        .get(&format!("{template}_{}", lang.code()))
        .or_else(|| templates.get(template))
        .filter(|sid| !sid.trim().is_empty())
        .cloned()
}

/// Whether the template configured for a message in a language is
/// WhatsApp-approved (may be sent outside the 24-hour window).
pub fn approved(restaurant: &RestaurantInfo, template: &str, lang: Lang) -> bool {
    let specific = format!("{template}_{}", lang.code());
    if restaurant.content_templates.contains_key(&specific) {
        return restaurant.approved_templates.contains(&specific);
    }
    restaurant.approved_templates.contains(template)
}

fn directional(text: &str, lang: Lang) -> String {
    match lang {
        Lang::Ar => bidi::rtl_lines(text),
        Lang::En => text.to_string(),
    }
}

/// Direction marks (Arabic), then cut to `max` at a line boundary.
fn fit(text: &str, max: usize, lang: Lang) -> String {
    let cut = truncate_lines(&directional(text, lang), max);
    let marked = directional(&cut, lang);
    if len(&marked) <= max {
        marked
    } else {
        cut
    }
}

/// A plain text message.
pub(crate) fn text(text: &str, lang: Lang) -> Reply {
    Reply::Text(fit(text, MAX_TEXT, lang))
}

/// Paragraphs joined by blank lines.
pub(crate) fn paragraphs<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(|p| p.as_ref().trim())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A question as an interactive message with its text fallback.
pub(crate) fn interactive(
    view: &View,
    lead: &[String],
    lang: Lang,
    restaurant: &RestaurantInfo,
    fallback: Fallback,
) -> Reply {
    let list = is_list_template(view.template);
    let mut parts: Vec<&str> = lead.iter().map(String::as_str).collect();
    parts.push(&view.body);
    let full_body = paragraphs(&parts);
    let body = fit(&full_body, MAX_BODY, lang);
    let title_max = if list {
        MAX_ROW_TITLE
    } else {
        MAX_BUTTON_TITLE
    };
    let choices: Vec<Choice> = view
        .options
        .iter()
        .take(if list { MAX_LIST_ROWS } else { MAX_BUTTONS })
        .map(|o| Choice {
            id: o.id.to_string(),
            title: non_empty(truncate(&o.title, title_max)),
            description: if list {
                o.description
                    .as_deref()
                    .map(|d| truncate(d, MAX_ROW_DESCRIPTION))
            } else {
                None
            },
        })
        .collect();

    let mut variables = BTreeMap::new();
    variables.insert("1".to_string(), body.clone());
    for (i, c) in choices.iter().enumerate() {
        variables.insert((2 + 3 * i).to_string(), c.id.clone());
        variables.insert((3 + 3 * i).to_string(), c.title.clone());
        variables.insert(
            (4 + 3 * i).to_string(),
            c.description.clone().unwrap_or_default(),
        );
    }

    let fallback = match fallback {
        Fallback::Numbered => numbered(&full_body, &view.options, lang, true),
        Fallback::Hint(hint) => paragraphs(&[full_body.as_str(), &hint]),
    };
    let fallback = if len(&directional(&fallback, lang)) > MAX_TEXT {
        // Too long with descriptions: drop them before cutting anything.
        fit(
            &numbered(&full_body, &view.options, lang, false),
            MAX_TEXT,
            lang,
        )
    } else {
        fit(&fallback, MAX_TEXT, lang)
    };

    Reply::Interactive {
        template: view.template.to_string(),
        content_sid: content_sid(restaurant, view.template, lang),
        variables,
        body,
        choices,
        fallback,
    }
}

fn non_empty(title: String) -> String {
    if title.is_empty() {
        "…".to_string()
    } else {
        title
    }
}

/// The question as numbered text (direction marks are added by the caller).
fn numbered(body: &str, options: &[Opt], lang: Lang, descriptions: bool) -> String {
    let t = texts::of(lang);
    let mut lines = String::new();
    for (i, o) in options.iter().enumerate() {
        if i > 0 {
            lines.push('\n');
        }
        lines.push_str(&format!("{}. {}", i + 1, o.title.trim()));
        if descriptions {
            if let Some(d) = &o.description {
                lines.push_str(&format!(" — {}", truncate(d, MAX_ROW_DESCRIPTION)));
            }
        }
    }
    if options.is_empty() {
        body.to_string()
    } else {
        paragraphs(&[body, lines.as_str(), t.reply_with_number().as_str()])
    }
}

/// WhatsApp's limits on one reply.
pub fn check_limits(reply: &Reply) -> Result<(), String> {
    match reply {
        Reply::Text(text) => {
            if text.trim().is_empty() {
                return Err("empty text".into());
            }
            if len(text) > MAX_TEXT {
                return Err(format!("text of {} > {MAX_TEXT}", len(text)));
            }
        }
        Reply::Interactive {
            template,
            body,
            choices,
            fallback,
            variables,
            ..
        } => {
            let list = is_list_template(template);
            if body.trim().is_empty() {
                return Err(format!("{template}: empty body"));
            }
            if len(body) > MAX_BODY {
                return Err(format!("{template}: body of {} > {MAX_BODY}", len(body)));
            }
            if len(fallback) > MAX_TEXT {
                return Err(format!(
                    "{template}: fallback of {} > {MAX_TEXT}",
                    len(fallback)
                ));
            }
            if list && !(1..=MAX_LIST_ROWS).contains(&choices.len()) {
                return Err(format!("{template}: {} list rows", choices.len()));
            }
            if !list && choices.len() > MAX_BUTTONS {
                return Err(format!("{template}: {} buttons", choices.len()));
            }
            let title_max = if list {
                MAX_ROW_TITLE
            } else {
                MAX_BUTTON_TITLE
            };
            let mut ids = std::collections::BTreeSet::new();
            for c in choices {
                if c.title.trim().is_empty() || len(&c.title) > title_max {
                    return Err(format!(
                        "{template}: title {:?} ({})",
                        c.title,
                        len(&c.title)
                    ));
                }
                if c.id.is_empty() || len(&c.id) > MAX_ID {
                    return Err(format!("{template}: id {:?}", c.id));
                }
                if !ids.insert(c.id.as_str()) {
                    return Err(format!("{template}: duplicate id {:?}", c.id));
                }
                if let Some(d) = &c.description {
                    if !list {
                        return Err(format!("{template}: a button with a description"));
                    }
                    if len(d) > MAX_ROW_DESCRIPTION {
                        return Err(format!("{template}: description {d:?} ({})", len(d)));
                    }
                }
            }
            if variables.get("1") != Some(body) {
                return Err(format!("{template}: variable 1 is not the body"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn truncation_counts_utf16_and_marks_the_cut() {
        assert_eq!(truncate("short", 20), "short");
        let cut = truncate("Chicken Shish Tawook Deluxe Platter", 24);
        assert_eq!(len(&cut), 24);
        assert!(cut.ends_with('…'));
        let emoji = truncate("🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒", 20);
        assert!(len(&emoji) <= 20, "{emoji}");
        let lines = truncate_lines("first line\nhttps://example.com/long/link\nthird", 30);
        assert_eq!(lines, "first line\n…");
        assert_eq!(truncate_lines(&"x".repeat(50), 30).chars().count(), 30);
    }

    #[test]
    fn pages_leave_room_for_more_and_extras() {
        assert_eq!(
            paginate(9, 0, 1),
            Page {
                start: 0,
                end: 9,
                page: 0,
                pages: 1
            }
        );
        let p = paginate(25, 0, 1);
        assert_eq!((p.start, p.end, p.pages), (0, 8, 4));
        let p = paginate(25, 3, 1);
        assert_eq!((p.start, p.end), (24, 25));
        // Wraps around.
        assert_eq!(paginate(25, 4, 1).page, 0);
    }
}
