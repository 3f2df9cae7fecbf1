//! What customers may type, in both languages whatever the dialogue's
//! language (compared after [`crate::normalize::fold`], so case, diacritics
//! and hamza forms do not matter). A command is recognised only when it is
//! the whole message.

use crate::ids::{ChoiceId, RateAnswer};
use crate::normalize::fold;
use crate::{Fulfilment, Lang, PaymentMethod};

/// A command the customer may type at any step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A greeting or "menu": back to the greeting (the cart is kept).
    Greeting,
    /// "Start over": back to the greeting with an empty cart.
    Restart,
    Cancel,
    Help,
    Human,
    Status,
    Cart,
    Back,
    Language(Lang),
    LanguageMenu,
    Thanks,
}

const GREETING: &[&str] = &[
    "hi",
    "hii",
    "hello",
    "hey",
    "hiya",
    "hola",
    "good morning",
    "good evening",
    "salam",
    "salaam",
    "assalamu alaikum",
    "start",
    "menu",
    "the menu",
    "show menu",
    "مرحبا",
    "مرحبتين",
    "اهلا",
    "اهلين",
    "هلا",
    "هاي",
    "السلام عليكم",
    "سلام عليكم",
    "السلام",
    "سلام",
    "صباح الخير",
    "مساء الخير",
    "القائمة",
    "قائمة",
    "قائمة الطعام",
    "المنيو",
    "منيو",
    "ابدأ",
    "بدء",
];
const RESTART: &[&str] = &[
    "start over",
    "restart",
    "reset",
    "new order",
    "طلب جديد",
    "من جديد",
    "ابدأ من جديد",
    "البداية",
];
const CANCEL: &[&str] = &[
    "cancel",
    "cancel order",
    "cancel my order",
    "cancel the order",
    "إلغاء",
    "الغاء",
    "إلغاء الطلب",
    "ألغ الطلب",
    "الغ",
    "كنسل",
];
const HELP: &[&str] = &["help", "help me", "مساعدة", "المساعدة", "ساعدني"];
const HUMAN: &[&str] = &[
    "human",
    "agent",
    "staff",
    "person",
    "talk to staff",
    "talk to a human",
    "talk to human",
    "talk to someone",
    "customer service",
    "support",
    "موظف",
    "كلم موظف",
    "أكلم موظف",
    "التحدث مع موظف",
    "خدمة العملاء",
    "الدعم",
    "إنسان",
    "شخص",
];
const STATUS: &[&str] = &[
    "status",
    "order status",
    "my order",
    "where is my order",
    "wheres my order",
    "track",
    "track order",
    "track my order",
    "حالة الطلب",
    "الحالة",
    "طلبي",
    "وين طلبي",
    "أين طلبي",
    "تتبع",
    "تتبع الطلب",
];
const CART: &[&str] = &[
    "cart",
    "basket",
    "my cart",
    "view cart",
    "السلة",
    "سلتي",
    "عرض السلة",
];
const BACK: &[&str] = &[
    "back",
    "go back",
    "previous",
    "رجوع",
    "ارجع",
    "السابق",
    "عودة",
];
const ENGLISH: &[&str] = &[
    "english",
    "en",
    "eng",
    "in english",
    "انجليزي",
    "الإنجليزية",
    "انجليزية",
    "انقليزي",
    "بالانجليزي",
];
const ARABIC: &[&str] = &[
    "arabic",
    "ar",
    "in arabic",
    "عربي",
    "العربية",
    "بالعربي",
    "عربية",
];
const LANGUAGE: &[&str] = &[
    "language",
    "lang",
    "change language",
    "اللغة",
    "لغة",
    "تغيير اللغة",
];
const THANKS: &[&str] = &[
    "thanks",
    "thank you",
    "thank u",
    "thx",
    "ty",
    "شكرا",
    "مشكور",
    "تسلم",
    "يعطيك العافية",
    "الله يعطيك العافية",
    "جزاك الله خير",
];

fn contains(list: &[&str], folded: &str) -> bool {
    list.iter().any(|w| fold(w) == folded)
}

/// The command a whole message is, if any.
pub fn command(body: &str) -> Option<Command> {
    let trimmed = body.trim();
    if matches!(trimmed, "?" | "؟") {
        return Some(Command::Help);
    }
    let folded = fold(trimmed);
    if folded.is_empty() {
        return None;
    }
    let table: [(&[&str], Command); 11] = [
        (RESTART, Command::Restart),
        (GREETING, Command::Greeting),
        (CANCEL, Command::Cancel),
        (HELP, Command::Help),
        (HUMAN, Command::Human),
        (STATUS, Command::Status),
        (CART, Command::Cart),
        (BACK, Command::Back),
        (ENGLISH, Command::Language(Lang::En)),
        (ARABIC, Command::Language(Lang::Ar)),
        (LANGUAGE, Command::LanguageMenu),
    ];
    table
        .iter()
        .find(|(list, _)| contains(list, &folded))
        .map(|(_, cmd)| *cmd)
        .or_else(|| contains(THANKS, &folded).then_some(Command::Thanks))
}

/// Words that choose an option besides its title ("yes" confirms, "كاش"
/// pays cash).
pub fn synonyms(id: &ChoiceId) -> &'static [&'static str] {
    match id {
        ChoiceId::Fulfilment(Fulfilment::Delivery) => &[
            "delivery",
            "deliver",
            "deliver it",
            "توصيل",
            "التوصيل",
            "دليفري",
            "ديليفري",
            "وصلوه",
        ],
        ChoiceId::Fulfilment(Fulfilment::Pickup) => &[
            "pickup",
            "pick up",
            "collect",
            "takeaway",
            "take away",
            "استلام",
            "الاستلام",
            "استلام من الفرع",
            "سفري",
            "من الفرع",
        ],
        ChoiceId::AddMore => &[
            "more",
            "add more",
            "add",
            "continue",
            "continue shopping",
            "المزيد",
            "إضافة",
            "إضافة المزيد",
            "أضف",
            "زيادة",
        ],
        ChoiceId::ViewCart => CART,
        ChoiceId::Checkout => &[
            "checkout",
            "check out",
            "done",
            "finish",
            "complete",
            "إتمام",
            "إتمام الطلب",
            "إنهاء",
            "خلاص",
            "تم",
        ],
        ChoiceId::Remove => &[
            "remove",
            "delete",
            "remove item",
            "حذف",
            "احذف",
            "إزالة",
            "شيل",
        ],
        ChoiceId::Pay(PaymentMethod::Cash) => &[
            "cash",
            "cash on delivery",
            "cod",
            "كاش",
            "نقدا",
            "نقدي",
            "كاش عند الاستلام",
        ],
        ChoiceId::Pay(PaymentMethod::Online) => &[
            "online",
            "card",
            "pay online",
            "credit card",
            "mada",
            "apple pay",
            "أونلاين",
            "بطاقة",
            "مدى",
            "دفع إلكتروني",
            "إلكتروني",
            "شبكة",
        ],
        ChoiceId::Confirm => &[
            "yes",
            "y",
            "ok",
            "okay",
            "confirm",
            "sure",
            "yes please",
            "place order",
            "نعم",
            "ايوه",
            "اي",
            "تمام",
            "أكد",
            "تأكيد",
            "موافق",
            "أوكي",
        ],
        ChoiceId::Back => BACK,
        ChoiceId::Rate {
            answer: RateAnswer::Now,
            ..
        } => &[
            "rate",
            "rate now",
            "yes",
            "ok",
            "قيم",
            "قيم الآن",
            "تقييم",
            "نعم",
        ],
        ChoiceId::Rate {
            answer: RateAnswer::Later,
            ..
        } => &[
            "later",
            "not now",
            "remind me later",
            "لاحقا",
            "بعدين",
            "ليس الآن",
            "مو الحين",
        ],
        ChoiceId::Rate {
            answer: RateAnswer::Skip,
            ..
        } => &[
            "skip",
            "no",
            "no thanks",
            "nothing",
            "لا",
            "تخطي",
            "تخطى",
            "لا شكرا",
        ],
        ChoiceId::Status => STATUS,
        ChoiceId::Help => HELP,
        ChoiceId::Human => HUMAN,
        ChoiceId::Restart => RESTART,
        _ => &[],
    }
}

/// Whether `folded` is one of the option's synonyms.
pub fn is_synonym(id: &ChoiceId, folded: &str) -> bool {
    contains(synonyms(id), folded)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn commands_in_both_languages() {
        assert_eq!(command("Hi"), Some(Command::Greeting));
        assert_eq!(command("السلام عليكم"), Some(Command::Greeting));
        assert_eq!(command("مرحباً"), Some(Command::Greeting));
        assert_eq!(command("القائمة"), Some(Command::Greeting));
        assert_eq!(command("MENU"), Some(Command::Greeting));
        assert_eq!(command("start over"), Some(Command::Restart));
        assert_eq!(command("الغاء"), Some(Command::Cancel));
        assert_eq!(command("إلغاء"), Some(Command::Cancel));
        assert_eq!(command("English"), Some(Command::Language(Lang::En)));
        assert_eq!(command("عربي"), Some(Command::Language(Lang::Ar)));
        assert_eq!(command("language"), Some(Command::LanguageMenu));
        assert_eq!(command("اللغة"), Some(Command::LanguageMenu));
        assert_eq!(command("?"), Some(Command::Help));
        assert_eq!(command("شكراً"), Some(Command::Thanks));
        assert_eq!(command("I want shawarma"), None);
        assert_eq!(command("hi there how are you"), None);
    }
}
