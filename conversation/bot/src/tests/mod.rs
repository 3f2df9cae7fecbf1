//! Whole dialogues, driven as the conversation stage drives the bot: the
//! dialogue goes through JSON (the JSONB column) between messages, and
//! every reply of every test is checked against WhatsApp's limits and, in
//! Arabic, for right-to-left safety ([`check_reply`]).

mod dialogues;
mod hours;
mod limits;
mod ratings;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use crate::bidi::{first_strong_rtl, is_link_line};
use crate::ids::ChoiceId;
use crate::ui;
use crate::{
    on_message, on_order_update, Action, Branch, Category, Context, Dialogue, Fulfilment, Inbound,
    Lang, MenuItem, OrderStatus, OrderUpdate, Reply, RestaurantInfo,
};

pub const OLAYA: Uuid = Uuid::from_u128(0xB1);
pub const MALQA: Uuid = Uuid::from_u128(0xB2);
pub const GRILLS: Uuid = Uuid::from_u128(0xC1);
pub const SANDWICHES: Uuid = Uuid::from_u128(0xC2);
pub const DRINKS: Uuid = Uuid::from_u128(0xC3);
pub const DESSERTS: Uuid = Uuid::from_u128(0xC4);
pub const TAWOOK: Uuid = Uuid::from_u128(0x101);
pub const KEBAB: Uuid = Uuid::from_u128(0x102);
pub const MIXED: Uuid = Uuid::from_u128(0x103);
pub const SHAWARMA: Uuid = Uuid::from_u128(0x201);
pub const FALAFEL: Uuid = Uuid::from_u128(0x202);
pub const BURGER: Uuid = Uuid::from_u128(0x203);
pub const LEMON: Uuid = Uuid::from_u128(0x301);
pub const LABAN: Uuid = Uuid::from_u128(0x302);
pub const PEPSI: Uuid = Uuid::from_u128(0x303);

/// Inside Olaya's 8 km radius (about 1 km away).
pub const NEAR_OLAYA: (f64, f64) = (24.7000, 46.6900);
/// Jeddah: no branch delivers there.
pub const JEDDAH: (f64, f64) = (21.5433, 39.1728);

pub fn dessert(i: u128) -> Uuid {
    Uuid::from_u128(0x400 + i)
}

pub fn restaurant(lang: Lang) -> RestaurantInfo {
    RestaurantInfo {
        name_en: "Bait Grill".into(),
        name_ar: "مشويات البيت".into(),
        default_language: lang,
        currency: "SAR".into(),
        delivery_fee: 1000,
        min_delivery_order: 3000,
        payment_link_base: Some("https://pay.example.com/bait-grill".into()),
        support_contact: Some("+966500000000".into()),
        promo_links: vec!["https://example.com/bait-grill/offers".into()],
        content_templates: Default::default(),
        approved_templates: Default::default(),
        time_zone: crate::Tz::Asia__Riyadh,
    }
}

fn item(id: Uuid, en: &str, ar: &str, price: i64) -> MenuItem {
    MenuItem {
        id,
        name_en: en.into(),
        name_ar: ar.into(),
        description_en: String::new(),
        description_ar: String::new(),
        price,
        discount_percent: 0,
        available: true,
        unavailable_branches: vec![],
    }
}

fn described(mut item: MenuItem, en: &str, ar: &str) -> MenuItem {
    item.description_en = en.into();
    item.description_ar = ar.into();
    item
}

pub fn menu() -> Vec<Category> {
    let desserts = [
        ("Kunafa", "كنافة"),
        ("Basbousa", "بسبوسة"),
        ("Umm Ali", "أم علي"),
        ("Luqaimat", "لقيمات"),
        ("Muhallabia", "مهلبية"),
        ("Baklava", "بقلاوة"),
        ("Qatayef", "قطايف"),
        ("Maamoul", "معمول"),
        ("Halawet el Jibn", "حلاوة الجبن"),
        ("Rice Pudding", "رز بالحليب"),
        ("Date Cake", "كيكة التمر"),
        (
            "Saffron & Pistachio Ice Cream Deluxe",
            "آيس كريم الزعفران والفستق الحلبي الفاخر",
        ),
    ];
    vec![
        Category {
            id: GRILLS,
            name_en: "Grills".into(),
            name_ar: "المشويات".into(),
            items: vec![
                described(
                    item(TAWOOK, "Chicken Shish Tawook", "شيش طاووق", 3200),
                    "Marinated chicken skewers with garlic sauce",
                    "أسياخ دجاج متبلة مع الثومية",
                ),
                MenuItem {
                    discount_percent: 10,
                    ..described(
                        item(KEBAB, "Lamb Kebab", "كباب لحم", 4200),
                        "Minced lamb with parsley and onion",
                        "لحم غنم مفروم مع البقدونس والبصل",
                    )
                },
                described(
                    item(MIXED, "Mixed Grill", "مشاوي مشكلة", 8900),
                    "Tawook, kebab and lamb cubes for two — a generous platter with rice, \
                     grilled vegetables, garlic sauce and fresh bread",
                    "طاووق وكباب وأوصال لشخصين",
                ),
            ],
        },
        Category {
            id: SANDWICHES,
            name_en: "Sandwiches".into(),
            name_ar: "السندويشات".into(),
            items: vec![
                described(
                    item(SHAWARMA, "Chicken Shawarma", "شاورما دجاج", 1400),
                    "Saj bread, pickles, garlic sauce",
                    "خبز صاج مع المخلل والثومية",
                ),
                described(
                    item(FALAFEL, "Falafel Wrap", "لفافة فلافل", 900),
                    "Falafel, tahini, vegetables",
                    "فلافل مع الطحينة والخضار",
                ),
                MenuItem {
                    available: false,
                    ..item(BURGER, "Beef Burger", "برجر لحم", 2500)
                },
            ],
        },
        Category {
            id: DRINKS,
            name_en: "Drinks".into(),
            name_ar: "المشروبات".into(),
            items: vec![
                item(LEMON, "Fresh Lemon Mint", "ليمون بالنعناع", 1100),
                item(LABAN, "Laban", "لبن", 500),
                MenuItem {
                    unavailable_branches: vec![MALQA],
                    ..item(PEPSI, "Pepsi", "بيبسي", 300)
                },
            ],
        },
        Category {
            id: DESSERTS,
            name_en: "Desserts".into(),
            name_ar: "الحلويات".into(),
            items: desserts
                .iter()
                .enumerate()
                .map(|(i, (en, ar))| item(dessert(i as u128 + 1), en, ar, 1000 + 100 * i as i64))
                .collect(),
        },
    ]
}

pub fn branches() -> Vec<Branch> {
    vec![
        Branch {
            id: OLAYA,
            name_en: "Olaya".into(),
            name_ar: "العليا".into(),
            address: Some("Olaya St, Riyadh".into()),
            latitude: Some(24.6937),
            longitude: Some(46.6853),
            delivery_radius_km: 8.0,
            ..Branch::default()
        },
        Branch {
            id: MALQA,
            name_en: "Al Malqa".into(),
            name_ar: "الملقا".into(),
            address: Some("Anas Ibn Malik Rd, Riyadh".into()),
            latitude: Some(24.8109),
            longitude: Some(46.6117),
            delivery_radius_km: 6.0,
            ..Branch::default()
        },
    ]
}

/// A conversation with the bot, stored between messages as the stage does.
pub struct Sim {
    pub restaurant: RestaurantInfo,
    pub menu: Vec<Category>,
    pub branches: Vec<Branch>,
    pub dialogue: Dialogue,
    pub now: DateTime<Utc>,
    pub window: bool,
    pub profile_name: Option<String>,
    seq: u128,
    /// Every reply so far, with the language it was checked in.
    pub replies: Vec<(Lang, Reply)>,
}

impl Sim {
    pub fn new(lang: Lang) -> Sim {
        Sim {
            restaurant: restaurant(lang),
            menu: menu(),
            branches: branches(),
            dialogue: Dialogue::default(),
            now: Utc.with_ymd_and_hms(2025, 10, 3, 18, 0, 0).unwrap(),
            window: true,
            profile_name: None,
            seq: 0,
            replies: Vec::new(),
        }
    }

    /// The order id the next message may use.
    pub fn next_order_id(&self) -> Uuid {
        Uuid::from_u128(0xA000_0000 + self.seq + 1)
    }

    fn context(&self) -> Context<'_> {
        Context {
            restaurant: &self.restaurant,
            menu: &self.menu,
            branches: &self.branches,
            now: self.now,
            new_order_id: self.next_order_id(),
            within_session_window: self.window,
        }
    }

    fn store(&mut self, dialogue: Dialogue, actions: &[Action]) {
        // The JSONB round trip the stage makes between messages.
        let json = serde_json::to_string(&dialogue).expect("dialogue serializes");
        let stored: Dialogue = serde_json::from_str(&json).expect("dialogue deserializes");
        assert_eq!(
            stored, dialogue,
            "the dialogue survives its JSON round trip"
        );
        let lang = stored.language(&self.restaurant);
        for action in actions {
            if let Action::Send(reply) = action {
                check_reply(reply, lang, &self.restaurant);
                self.replies.push((lang, reply.clone()));
            }
        }
        self.dialogue = stored;
        self.seq += 1;
        self.now += Duration::minutes(1);
    }

    pub fn send(&mut self, inbound: Inbound) -> Vec<Action> {
        let mut inbound = inbound;
        if inbound.profile_name.is_none() {
            inbound.profile_name = self.profile_name.clone();
        }
        let mut dialogue = self.dialogue.clone();
        let actions = on_message(&mut dialogue, &inbound, &self.context());
        // The same stored state and message decide the same (replays).
        let mut again = self.dialogue.clone();
        assert_eq!(on_message(&mut again, &inbound, &self.context()), actions);
        assert!(!actions.is_empty(), "a customer message is never ignored");
        self.store(dialogue, &actions);
        actions
    }

    pub fn text(&mut self, body: &str) -> Vec<Action> {
        self.send(Inbound {
            body: body.into(),
            ..Default::default()
        })
    }

    /// A quick-reply tap (Body is the button title).
    pub fn tap(&mut self, id: &str) -> Vec<Action> {
        self.send(Inbound {
            body: "tapped".into(),
            button_payload: Some(id.into()),
            ..Default::default()
        })
    }

    /// A list-picker choice.
    pub fn pick(&mut self, id: &str) -> Vec<Action> {
        self.send(Inbound {
            body: "picked".into(),
            list_id: Some(id.into()),
            ..Default::default()
        })
    }

    pub fn location(&mut self, point: (f64, f64)) -> Vec<Action> {
        self.send(Inbound {
            location: Some(point),
            address: Some("Tahlia St, Riyadh".into()),
            ..Default::default()
        })
    }

    pub fn update(&mut self, update: OrderUpdate) -> Vec<Action> {
        let mut dialogue = self.dialogue.clone();
        let actions = on_order_update(&mut dialogue, &update, &self.context());
        let mut again = self.dialogue.clone();
        assert_eq!(
            on_order_update(&mut again, &update, &self.context()),
            actions
        );
        self.store(dialogue, &actions);
        actions
    }

    /// Greeting → delivery near Olaya: the category list.
    pub fn start_delivery(&mut self) {
        self.text("hi");
        self.tap("ful:delivery");
        self.location(NEAR_OLAYA);
    }

    /// Greeting → pickup at a branch: the category list.
    pub fn start_pickup(&mut self, branch: Uuid) {
        self.text("hi");
        self.tap("ful:pickup");
        self.pick(&format!("branch:{branch}"));
    }

    pub fn add(&mut self, item: Uuid, quantity: u32) {
        self.pick(&format!("item:{item}"));
        self.tap(&format!("qty:{quantity}"));
    }
}

pub fn update(order_id: Uuid, number: i64, status: OrderStatus) -> OrderUpdate {
    OrderUpdate {
        order_id,
        order_number: number,
        status,
        previous: None,
        rating: None,
        total: 5200,
        fulfilment: Fulfilment::Delivery,
    }
}

// ------------------------------------------------------------------ checks

/// WhatsApp's limits, ids that parse back, the ContentSid lookup, a
/// numbered fallback, and right-to-left safety in Arabic.
pub fn check_reply(reply: &Reply, lang: Lang, restaurant: &RestaurantInfo) {
    reply
        .check_limits()
        .unwrap_or_else(|e| panic!("{e}: {reply:#?}"));
    match reply {
        Reply::Text(text) => {
            if lang == Lang::Ar {
                check_rtl(text);
            }
        }
        Reply::Interactive {
            template,
            content_sid,
            body,
            choices,
            fallback,
            ..
        } => {
            assert_eq!(
                content_sid,
                &ui::content_sid(restaurant, template, lang),
                "{template}: the ContentSid configured for it"
            );
            for c in choices {
                assert!(ChoiceId::parse(&c.id).is_some(), "{template}: id {}", c.id);
            }
            let keyword_fallback = [ui::templates::LANGUAGE, ui::templates::QUANTITY];
            if !choices.is_empty() && !keyword_fallback.contains(&template.as_str()) {
                assert!(
                    fallback.contains("1. "),
                    "{template}: numbered fallback: {fallback}"
                );
            }
            if lang == Lang::Ar {
                check_rtl(body);
                check_rtl(fallback);
            }
        }
    }
}

fn check_rtl(text: &str) {
    for c in ['\u{2066}', '\u{2068}', '\u{2069}', '\u{200F}'] {
        assert!(
            !text.contains(&format!("{c}https")) && !text.contains(&format!("https{c}")),
            "a link with an invisible character next to it: {text:?}"
        );
    }
    for word in text.split_whitespace().filter(|w| w.contains("://")) {
        assert!(
            !word.contains(|c: char| matches!(c, '\u{2066}'..='\u{2069}' | '\u{200F}')),
            "a link glued to a direction mark: {word:?}"
        );
    }
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_link_line(l))
    {
        assert_eq!(
            first_strong_rtl(line),
            Some(true),
            "an Arabic line that would not lay out right-to-left: {line:?} in {text:?}"
        );
    }
}

// ------------------------------------------------------- reading actions

pub fn replies(actions: &[Action]) -> Vec<&Reply> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(reply) => Some(reply),
            _ => None,
        })
        .collect()
}

/// Everything the customer reads (text version), joined.
pub fn said(actions: &[Action]) -> String {
    replies(actions)
        .iter()
        .map(|r| match r {
            Reply::Text(text) => text.clone(),
            Reply::Interactive { body, .. } => body.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

pub fn last_interactive(actions: &[Action]) -> &Reply {
    replies(actions)
        .into_iter()
        .rev()
        .find(|r| matches!(r, Reply::Interactive { .. }))
        .unwrap_or_else(|| panic!("no interactive reply in {actions:#?}"))
}

pub fn template(actions: &[Action]) -> String {
    match last_interactive(actions) {
        Reply::Interactive { template, .. } => template.clone(),
        Reply::Text(_) => unreachable!(),
    }
}

pub fn choice_ids(actions: &[Action]) -> Vec<String> {
    match last_interactive(actions) {
        Reply::Interactive { choices, .. } => choices.iter().map(|c| c.id.clone()).collect(),
        Reply::Text(_) => unreachable!(),
    }
}

pub fn placed(actions: &[Action]) -> Option<&Action> {
    actions
        .iter()
        .find(|a| matches!(a, Action::PlaceOrder { .. }))
}

pub fn count<F: Fn(&Action) -> bool>(actions: &[Action], f: F) -> usize {
    actions.iter().filter(|a| f(a)).count()
}
