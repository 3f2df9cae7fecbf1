//! Marketing opt-out and opt-in words. A message that is one of these
//! words and nothing else (case, diacritics, Arabic letter variants,
//! punctuation and direction marks aside) changes the customer's marketing
//! consent for the restaurant instead of going to the dialogue.
//!
//! "CANCEL", "END" and "QUIT" (also opt-out words in Twilio's defaults) are
//! left out on purpose: customers write "cancel" about an order.

use crate::{normalize::fold, Lang, RestaurantInfo};

/// What the customer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentChange {
    OptOut,
    OptIn,
}

/// Folded (see [`fold`]) opt-out words.
const OPT_OUT: &[&str] = &["stop", "stopall", "unsubscribe", "ايقاف", "الغاء الاشتراك"];
/// Folded opt-in words.
const OPT_IN: &[&str] = &["start", "unstop", "اشتراك"];

/// The change a message asks for, if it is an opt-out or opt-in word.
pub fn change_asked(body: &str) -> Option<ConsentChange> {
    let folded = fold(body);
    if OPT_OUT.contains(&folded.as_str()) {
        Some(ConsentChange::OptOut)
    } else if OPT_IN.contains(&folded.as_str()) {
        Some(ConsentChange::OptIn)
    } else {
        None
    }
}

/// The one confirmation of a change, in the customer's language.
pub fn confirmation(change: ConsentChange, lang: Lang, restaurant: &RestaurantInfo) -> String {
    match (change, lang) {
        (ConsentChange::OptOut, Lang::En) => format!(
            "You will no longer receive offers from {}. Messages about your orders still come. Reply START to receive offers again.",
            restaurant.name_en
        ),
        (ConsentChange::OptOut, Lang::Ar) => format!(
            "لن تصلك عروض {} بعد الآن. ستصلك رسائل طلباتك كالمعتاد. أرسل «اشتراك» لتلقي العروض من جديد.",
            restaurant.name_ar
        ),
        (ConsentChange::OptIn, Lang::En) => format!(
            "You will receive offers from {} again. Reply STOP to stop them.",
            restaurant.name_en
        ),
        (ConsentChange::OptIn, Lang::Ar) => format!(
            "ستصلك عروض {} من جديد. أرسل «إيقاف» لإيقافها.",
            restaurant.name_ar
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_out_words_in_english_and_arabic_whatever_their_spelling() {
        for body in [
            "STOP",
            "stop",
            " Stop! ",
            "UNSUBSCRIBE",
            "unsubscribe.",
            "إيقاف",
            "ايقاف",
            "أيقاف",
            "إيـقـاف",
            "إِيقَاف",
            "\u{200f}إيقاف\u{200f}",
            "الغاء الاشتراك",
            "إلغاء الاشتراك",
            "إلغاء  الاشتراك؟",
        ] {
            assert_eq!(change_asked(body), Some(ConsentChange::OptOut), "{body:?}");
        }
    }

    #[test]
    fn opt_in_words() {
        for body in ["START", "start", "Start.", "اشتراك", "إشتراك", "اشتراك!"] {
            assert_eq!(change_asked(body), Some(ConsentChange::OptIn), "{body:?}");
        }
    }

    #[test]
    fn a_word_inside_a_sentence_or_an_order_word_changes_nothing() {
        for body in [
            "stop the delivery please",
            "don't stop",
            "cancel",
            "end",
            "quit",
            "الغاء",
            "الغاء الطلب",
            "starters",
            "",
            "🛑",
        ] {
            assert_eq!(change_asked(body), None, "{body:?}");
        }
    }

    #[test]
    fn the_confirmation_is_in_the_customers_language() {
        let restaurant = RestaurantInfo {
            name_en: "Alpha Grill".into(),
            name_ar: "مشويات ألفا".into(),
            ..RestaurantInfo::default()
        };
        let en = confirmation(ConsentChange::OptOut, Lang::En, &restaurant);
        assert!(en.contains("Alpha Grill") && en.contains("START"), "{en}");
        let ar = confirmation(ConsentChange::OptOut, Lang::Ar, &restaurant);
        assert!(ar.contains("مشويات ألفا") && ar.contains("اشتراك"), "{ar}");
        let back = confirmation(ConsentChange::OptIn, Lang::En, &restaurant);
        assert!(back.contains("again"), "{back}");
    }
}
