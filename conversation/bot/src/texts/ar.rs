//! Arabic texts. Lines start with an Arabic word; prices, order numbers,
//! links and distances are wrapped in left-to-right isolates, names and
//! addresses in first-strong isolates.

use super::{stars, Fee, Line, Place, Summary, Texts, When, WhenDay};
use crate::bidi::{auto, ltr};
use crate::{Fulfilment, OrderStatus, PaymentMethod};

pub struct Arabic;

fn num(n: impl std::fmt::Display) -> String {
    ltr(&n.to_string())
}

/// "صنف واحد", "صنفان", "٣ أصناف", "١١ صنفاً".
fn items(n: usize) -> String {
    match n {
        1 => "صنف واحد".to_string(),
        2 => "صنفان".to_string(),
        3..=10 => format!("{} أصناف", num(n)),
        _ => format!("{} صنفاً", num(n)),
    }
}

/// Pieces in a cart: "قطعة واحدة", "قطعتان", "٣ قطع", "١١ قطعة".
fn pieces(n: usize) -> String {
    match n {
        1 => "قطعة واحدة".to_string(),
        2 => "قطعتان".to_string(),
        3..=10 => format!("{} قطع", num(n)),
        _ => format!("{} قطعة", num(n)),
    }
}

fn order_ref(number: Option<i64>) -> String {
    match number {
        Some(n) => format!("طلبك رقم {}", ltr(&format!("#{n}"))),
        None => "طلبك".to_string(),
    }
}

fn km(distance: f64) -> String {
    format!("{} كم", ltr(&format!("{distance:.1}")))
}

impl Texts for Arabic {
    fn greeting(&self, restaurant: &str, customer: Option<&str>) -> String {
        match customer {
            Some(name) => format!("أهلاً {}، مرحباً بك في {}! 👋", auto(name), auto(restaurant)),
            None => format!("أهلاً وسهلاً بك في {}! 👋", auto(restaurant)),
        }
    }
    fn ask_fulfilment(&self) -> String {
        "هل تفضّل التوصيل أم الاستلام من الفرع؟".into()
    }
    fn cart_kept(&self, n: u32) -> String {
        format!("🛒 ما زال في سلتك {}.", pieces(n as usize))
    }
    fn delivery_button(&self) -> String {
        "🛵 توصيل".into()
    }
    fn pickup_button(&self) -> String {
        "🏃 استلام من الفرع".into()
    }

    fn didnt_get(&self) -> String {
        "عذراً، لم أفهم ذلك.".into()
    }
    fn choose_number(&self, max: usize) -> String {
        if max == 1 {
            format!("من فضلك أرسل الرقم {}.", num(1))
        } else {
            format!("من فضلك أرسل رقماً من {} إلى {}.", num(1), num(max))
        }
    }
    fn stale_choice(&self) -> String {
        "هذا الخيار من رسالة سابقة.".into()
    }
    fn media_unsupported(&self) -> String {
        "عذراً، لا أستطيع قراءة الصور أو الرسائل الصوتية. من فضلك اكتب إجابتك أو اختر من الخيارات."
            .into()
    }
    fn reply_with_number(&self) -> String {
        "أرسل رقم اختيارك.".into()
    }
    fn more_title(&self) -> String {
        "المزيد…".into()
    }
    fn more_description(&self, next_page: usize, pages: usize) -> String {
        format!("صفحة {} من {}", num(next_page), num(pages))
    }
    fn back_title(&self) -> String {
        "رجوع ↩️".into()
    }

    fn ask_branch(&self) -> String {
        "من أي فرع تودّ استلام طلبك؟".into()
    }
    fn pickup_from(&self, branch: &str) -> String {
        format!("🏃 الاستلام من فرع {}.", auto(branch))
    }
    fn no_branches(&self) -> String {
        "عذراً، لا يوجد فرع يستقبل الطلبات الآن. اكتب «موظف» للتواصل مع فريقنا.".into()
    }
    fn ask_location(&self) -> String {
        "من فضلك شارك موقعك (📎 ثم «الموقع») أو اكتب عنوان التوصيل.".into()
    }
    fn pickup_instead_button(&self) -> String {
        "🏃 استلام من الفرع".into()
    }
    fn staff_button(&self) -> String {
        "🙋 التحدث مع موظف".into()
    }
    fn delivering_from(&self, branch: &str, distance_km: f64) -> String {
        format!(
            "📍 ممتاز، نوصل إلى موقعك من فرع {} (على بعد {}).",
            auto(branch),
            km(distance_km)
        )
    }
    fn delivering_to_address(&self, address: &str, branch: &str) -> String {
        format!(
            "📍 سنوصل طلبك إلى: {} (من فرع {}).",
            auto(address),
            auto(branch)
        )
    }
    fn outside_area(&self, nearest: Option<(&str, f64)>) -> String {
        let mut text = "😔 عذراً، هذا الموقع خارج نطاق التوصيل.".to_string();
        if let Some((branch, distance)) = nearest {
            text.push_str(&format!(
                " أقرب فروعنا ({}) على بعد {}.",
                auto(branch),
                km(distance)
            ));
        }
        text.push_str(" يمكنك إرسال موقع آخر، أو كتابة عنوان، أو الاستلام من الفرع.");
        text
    }
    fn closed_now(&self, next: Option<(&str, &When)>) -> String {
        match next {
            Some((branch, when)) => format!(
                "🕒 عذراً، نحن مغلقون الآن ولا نستقبل الطلبات. يفتح فرع {} {}.",
                auto(branch),
                opens(when)
            ),
            None => {
                "🕒 عذراً، نحن مغلقون الآن ولا نستقبل الطلبات. اكتب «موظف» للتواصل مع فريقنا.".into()
            }
        }
    }
    fn branch_closed(&self, branch: &str, when: Option<&When>) -> String {
        match when {
            Some(when) => format!("🕒 فرع {} مغلق الآن، ويفتح {}.", auto(branch), opens(when)),
            None => format!("🕒 فرع {} مغلق الآن.", auto(branch)),
        }
    }
    fn order_refused_closed(&self, branch: &str, when: Option<&When>) -> String {
        let mut text = format!("😔 لم نتمكن من تسجيل طلبك: فرع {} أغلق.", auto(branch));
        if let Some(when) = when {
            text.push_str(&format!(" يفتح {}.", opens(when)));
        }
        text.push_str(" سلتك محفوظة — اكتب «مرحبا» لتطلب من جديد.");
        text
    }
    fn address_too_short(&self) -> String {
        "من فضلك اكتب العنوان كاملاً (الحي والشارع) أو شارك موقعك.".into()
    }

    fn shared_location(&self) -> String {
        "موقعك المرسل 📍".into()
    }

    fn ask_category(&self) -> String {
        "ماذا تحب أن تطلب؟ اختر قسماً:".into()
    }
    fn category_description(&self, n: usize) -> String {
        items(n)
    }
    fn cart_entry(&self, n: u32) -> String {
        format!("🛒 السلة ({n})")
    }
    fn cart_entry_description(&self, subtotal: &str) -> String {
        format!("عرض السلة · {}", ltr(subtotal))
    }
    fn menu_empty(&self) -> String {
        "عذراً، لا توجد أصناف متاحة الآن. اكتب «موظف» للتواصل مع فريقنا.".into()
    }
    fn ask_item(&self, category: &str) -> String {
        format!("اختر صنفاً من {}:", auto(category))
    }
    fn search_results(&self, query: &str) -> String {
        format!("هذا ما وجدته لـ «{}»:", auto(query))
    }
    fn not_found(&self, query: &str) -> String {
        format!("عذراً، لم أجد «{}» في القائمة.", auto(query))
    }
    fn item_unavailable(&self, item: &str) -> String {
        format!("عذراً، {} غير متوفر حالياً.", auto(item))
    }
    fn price(&self, price: &str, discount_percent: i32) -> String {
        if discount_percent > 0 {
            format!(
                "{} (خصم {})",
                ltr(price),
                ltr(&format!("{discount_percent}%"))
            )
        } else {
            ltr(price)
        }
    }

    fn ask_quantity(&self, item: &str, price: &str, description: &str, max: u32) -> String {
        let mut text = format!("الصنف: {} — {price}", auto(&format!("*{item}*")));
        if !description.is_empty() {
            text.push('\n');
            text.push_str(&auto(description));
        }
        text.push_str(&format!(
            "\n\nكم تريد؟ اختر أو اكتب رقماً (حتى {}).",
            num(max)
        ));
        text
    }
    fn quantity_range(&self, max: u32) -> String {
        format!("من فضلك اكتب كمية من {} إلى {}.", num(1), num(max))
    }
    fn quantity_capped(&self, item: &str, max: u32) -> String {
        format!(
            "الحد الأقصى من {} هو {}، لذا جعلت الكمية {}.",
            auto(item),
            num(max),
            num(max)
        )
    }

    fn added(&self, quantity: u32, item: &str) -> String {
        format!("✅ أضفت {} × {} إلى سلتك.", auto(item), num(quantity))
    }
    fn cart_status(&self, n: u32, subtotal: &str) -> String {
        format!("🛒 في سلتك {} بمجموع {}", pieces(n as usize), ltr(subtotal))
    }
    fn ask_next(&self) -> String {
        "ماذا تريد أن تفعل الآن؟".into()
    }
    fn add_more_button(&self) -> String {
        "➕ إضافة المزيد".into()
    }
    fn view_cart_button(&self) -> String {
        "🛒 عرض السلة".into()
    }
    fn checkout_button(&self) -> String {
        "✅ إتمام الطلب".into()
    }
    fn remove_button(&self) -> String {
        "🗑️ حذف صنف".into()
    }
    fn cart(&self, lines: &[Line<'_>], more_lines: usize, subtotal: &str) -> String {
        let mut text = "🛒 سلتك:".to_string();
        for line in lines {
            text.push_str(&format!(
                "\n• {} × {} — {}",
                auto(line.name),
                num(line.quantity),
                ltr(&line.amount)
            ));
        }
        if more_lines > 0 {
            text.push_str(&format!("\nو{} أخرى…", items(more_lines)));
        }
        text.push_str(&format!("\nالمجموع: {}", ltr(subtotal)));
        text
    }
    fn cart_empty(&self) -> String {
        "سلتك فارغة.".into()
    }
    fn ask_remove(&self) -> String {
        "أي صنف تريد حذفه؟".into()
    }
    fn removed(&self, item: &str) -> String {
        format!("🗑️ حذفت {} من سلتك.", auto(item))
    }
    fn items_dropped(&self, items: &[&str]) -> String {
        let names: Vec<String> = items.iter().map(|i| auto(i)).collect();
        format!(
            "⚠️ بعض الأصناف لم تعد متوفرة فحذفتها من سلتك: {}.",
            names.join("، ")
        )
    }
    fn line_description(&self, quantity: u32, amount: &str) -> String {
        format!("الكمية {} · {}", num(quantity), ltr(amount))
    }
    fn below_minimum(&self, minimum: &str, subtotal: &str, shortfall: &str) -> String {
        format!(
            "الحد الأدنى لطلبات التوصيل {}، ومجموع سلتك {}. أضف ما قيمته {} لإتمام الطلب، أو اختر الاستلام من الفرع.",
            ltr(minimum),
            ltr(subtotal),
            ltr(shortfall)
        )
    }

    fn summary(&self, s: &Summary<'_>) -> String {
        let mut text = "🧾 *ملخص طلبك*".to_string();
        for line in &s.lines {
            text.push_str(&format!(
                "\n• {} × {} — {}",
                auto(line.name),
                num(line.quantity),
                ltr(&line.amount)
            ));
        }
        if s.more_lines > 0 {
            text.push_str(&format!("\nو{} أخرى…", items(s.more_lines)));
        }
        text.push_str(&format!("\nالمجموع الفرعي: {}", ltr(&s.subtotal)));
        match &s.fee {
            Fee::None => {}
            Fee::Free => text.push_str("\nالتوصيل: مجاني"),
            Fee::Amount(fee) => text.push_str(&format!("\nرسوم التوصيل: {}", ltr(fee))),
        }
        text.push_str(&format!("\n*الإجمالي:* {}", ltr(&s.total)));
        match &s.place {
            Place::Delivery { address, branch } => {
                text.push_str(&format!("\n🛵 التوصيل إلى: {}", auto(address)));
                if let Some(branch) = branch {
                    text.push_str(&format!(" (من فرع {})", auto(branch)));
                }
            }
            Place::Pickup { branch } => match branch {
                Some(branch) => text.push_str(&format!("\n🏃 الاستلام من فرع {}", auto(branch))),
                None => text.push_str("\n🏃 الاستلام من الفرع"),
            },
        }
        text
    }
    fn ask_payment(&self) -> String {
        "كيف تفضّل الدفع؟".into()
    }
    fn cash_button(&self) -> String {
        "💵 نقداً".into()
    }
    fn online_button(&self) -> String {
        "💳 دفع إلكتروني".into()
    }
    fn ask_confirm(&self, total: &str, payment: PaymentMethod, fulfilment: Fulfilment) -> String {
        let payment = match (payment, fulfilment) {
            (PaymentMethod::Cash, Fulfilment::Delivery) => "نقداً عند التوصيل",
            (PaymentMethod::Cash, Fulfilment::Pickup) => "نقداً عند الاستلام",
            (PaymentMethod::Online, _) => "إلكترونياً (سيصلك رابط الدفع)",
        };
        format!(
            "الإجمالي {}، والدفع {}.\nهل أرسل طلبك الآن؟",
            ltr(total),
            payment
        )
    }
    fn confirm_button(&self) -> String {
        "✅ تأكيد الطلب".into()
    }
    fn edit_cart_button(&self) -> String {
        "✏️ تعديل السلة".into()
    }
    fn cancel_button(&self) -> String {
        "❌ إلغاء".into()
    }
    fn placing(&self, payment_link: Option<&str>) -> String {
        let mut text = "⏳ جارٍ إرسال طلبك… سيصلك رقم الطلب خلال لحظات.".to_string();
        if let Some(link) = payment_link {
            text.push_str(&format!("\n\n💳 ادفع بأمان من هنا:\n{link}"));
        }
        text
    }
    fn ask_after_order(&self) -> String {
        "هل هناك شيء آخر أستطيع مساعدتك به؟".into()
    }
    fn status_button(&self) -> String {
        "📦 حالة الطلب".into()
    }
    fn new_order_button(&self) -> String {
        "🆕 طلب جديد".into()
    }
    fn help_button(&self) -> String {
        "❓ مساعدة".into()
    }

    fn cart_cancelled(&self) -> String {
        "تم، ألغيت هذا الطلب وأفرغت سلتك. أرسل «مرحبا» متى أردت الطلب من جديد.".into()
    }
    fn cancelling_order(&self, number: Option<i64>) -> String {
        format!("جارٍ إلغاء {}…", order_ref(number))
    }
    fn cannot_cancel(&self, number: Option<i64>) -> String {
        format!(
            "عذراً، {} قيد التحضير ولا يمكن إلغاؤه من هنا. اكتب «موظف» للتحدث مع فريقنا.",
            order_ref(number)
        )
    }
    fn nothing_to_cancel(&self) -> String {
        "لا يوجد ما يمكن إلغاؤه.".into()
    }
    fn order_status(
        &self,
        number: Option<i64>,
        status: OrderStatus,
        fulfilment: Option<Fulfilment>,
        total: Option<&str>,
    ) -> String {
        let what = match status {
            OrderStatus::Draft => "وصلنا وينتظر التأكيد ⏳",
            OrderStatus::Confirmed => "مؤكد ✅",
            OrderStatus::Preparing => "قيد التحضير 👨‍🍳",
            OrderStatus::OutForDelivery => "في الطريق إليك 🛵",
            OrderStatus::Delivered | OrderStatus::Rated => match fulfilment {
                Some(Fulfilment::Pickup) => "تم استلامه 🎉",
                _ => "تم توصيله 🎉",
            },
            OrderStatus::Cancelled => "ملغى",
        };
        let mut text = format!("📦 {} {what}.", order_ref(number));
        if let Some(total) = total {
            text.push_str(&format!("\nالإجمالي: {}", ltr(total)));
        }
        text
    }
    fn no_orders(&self) -> String {
        "ليس لديك طلبات بعد. أرسل «مرحبا» لبدء طلب.".into()
    }
    fn help(&self) -> String {
        "ℹ️ *طريقة الطلب*\n\
         اضغط على الأزرار، أو أرسل رقم الخيار.\n\
         ويمكنك أيضاً كتابة:\n\
         • «القائمة» — لبدء طلب جديد\n\
         • «السلة» — لعرض سلتك\n\
         • «حالة الطلب» — لمعرفة أين طلبك\n\
         • «إلغاء» — للإلغاء\n\
         • «موظف» — للتحدث مع فريقنا\n\
         • «English» — to continue in English"
            .into()
    }
    fn handoff(&self) -> String {
        "🙋 أبلغت فريقنا، وسيرد عليك أحد الموظفين هنا قريباً.".into()
    }
    fn you_are_welcome(&self) -> String {
        "العفو! 😊".into()
    }
    fn language_switched(&self) -> String {
        "تمام، لنكمل بالعربية.".into()
    }
    fn ask_language(&self) -> String {
        "اختر لغتك / Choose your language".into()
    }
    fn language_fallback(&self) -> String {
        "اكتب «عربي» أو «English».".into()
    }

    fn order_confirmed(&self, number: i64, total: &str, fulfilment: Fulfilment) -> String {
        let next = match fulfilment {
            Fulfilment::Delivery => "سنخبرك عندما يكون في الطريق إليك.",
            Fulfilment::Pickup => "سنخبرك عندما يبدأ تحضيره.",
        };
        format!(
            "✅ تم تأكيد {}! الإجمالي: {}.\n{next}",
            order_ref(Some(number)),
            ltr(total)
        )
    }
    fn order_preparing(&self, number: i64) -> String {
        format!("👨‍🍳 {} قيد التحضير الآن.", order_ref(Some(number)))
    }
    fn order_on_the_way(&self, number: i64) -> String {
        format!("🛵 {} في الطريق إليك!", order_ref(Some(number)))
    }
    fn order_delivered(&self, number: i64, fulfilment: Fulfilment) -> String {
        match fulfilment {
            Fulfilment::Delivery => {
                format!("🎉 تم توصيل {}. بالعافية!", order_ref(Some(number)))
            }
            Fulfilment::Pickup => {
                format!("🎉 تم استلام {}. بالعافية!", order_ref(Some(number)))
            }
        }
    }
    fn order_cancelled(&self, number: i64) -> String {
        format!(
            "تم إلغاء {}. أرسل «مرحبا» إذا أردت الطلب من جديد.",
            order_ref(Some(number))
        )
    }

    fn ask_to_rate(&self) -> String {
        "كيف كانت تجربتك؟ يسعدنا تقييمك.".into()
    }
    fn rating_reminder(&self, number: i64) -> String {
        format!("تذكير سريع: هل تودّ تقييم {}؟", order_ref(Some(number)))
    }
    fn rate_now_button(&self) -> String {
        "⭐ قيّم الآن".into()
    }
    fn later_button(&self) -> String {
        "⏰ لاحقاً".into()
    }
    fn ask_rating(&self, number: Option<i64>) -> String {
        format!(
            "كيف تقيّم {}؟ اختر من {} إلى {} نجوم.",
            order_ref(number),
            num(1),
            num(5)
        )
    }
    fn rating_title(&self, n: i16) -> String {
        let word = match n {
            5 => "ممتاز",
            4 => "جيد جداً",
            3 => "جيد",
            2 => "مقبول",
            _ => "سيئ",
        };
        format!("{} {word}", stars(n))
    }
    fn rating_range(&self) -> String {
        format!("من فضلك اختر تقييماً من {} إلى {}.", num(1), num(5))
    }
    fn thanks_for_rating(&self, promo_links: &[String]) -> String {
        let mut text = "شكراً لتقييمك! 💚 يسعدنا أن طلبك أعجبك.".to_string();
        if !promo_links.is_empty() {
            text.push_str("\nلا تفوّت عروضنا:");
            for link in promo_links {
                text.push_str(&format!("\n{link}"));
            }
        }
        text
    }
    fn sorry_for_rating(&self, support: Option<&str>) -> String {
        let mut text = "نأسف لأن تجربتك لم تكن كما يجب. 🙏 سيراجع فريقنا ملاحظتك.".to_string();
        if let Some(support) = support {
            text.push_str(&format!("\nللتواصل مع الدعم: {}", ltr(support)));
        }
        text
    }
    fn ask_comment(&self) -> String {
        "هل تودّ إضافة تعليق؟ اكتبه الآن، أو اضغط «تخطي».".into()
    }
    fn skip_button(&self) -> String {
        "تخطي".into()
    }
    fn comment_thanks(&self) -> String {
        "شكراً لك! أوصلنا تعليقك إلى الفريق.".into()
    }
    fn comment_skipped(&self) -> String {
        "تمام، شكراً لك مجدداً!".into()
    }
    fn later_ok(&self, will_remind: bool) -> String {
        if will_remind {
            "لا مشكلة، سأسألك مرة أخرى بعد قليل.".into()
        } else {
            "لا مشكلة.".into()
        }
    }
    fn already_rated(&self, number: Option<i64>) -> String {
        format!("لقد قيّمت {} من قبل. شكراً لك!", order_ref(number))
    }
    fn rating_help(&self, number: Option<i64>, support: Option<&str>) -> String {
        let mut text = format!(
            "🙋 طلبت من فريقنا مساعدتك بخصوص {}، وسيردون عليك هنا قريباً.",
            order_ref(number)
        );
        if let Some(support) = support {
            text.push_str(&format!("\nويمكنك أيضاً التواصل مع الدعم: {}", ltr(support)));
        }
        text
    }
}

/// «اليوم الساعة 18:00»، «يوم الجمعة الساعة 13:00»، «في 2 أبريل الساعة 12:00».
fn opens(when: &When) -> String {
    const MONTHS: [&str; 12] = [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "مايو",
        "يونيو",
        "يوليو",
        "أغسطس",
        "سبتمبر",
        "أكتوبر",
        "نوفمبر",
        "ديسمبر",
    ];
    let day = match when.day {
        WhenDay::Today => "اليوم".to_string(),
        WhenDay::Tomorrow => "غداً".to_string(),
        WhenDay::Weekday(d) => format!("يوم {}", weekday(d)),
        WhenDay::Date { day, month } => {
            format!(
                "في {} {}",
                ltr(&day.to_string()),
                MONTHS[(month as usize + 11) % 12]
            )
        }
    };
    format!("{day} الساعة {}", ltr(&when.time))
}

fn weekday(d: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match d {
        Mon => "الاثنين",
        Tue => "الثلاثاء",
        Wed => "الأربعاء",
        Thu => "الخميس",
        Fri => "الجمعة",
        Sat => "السبت",
        Sun => "الأحد",
    }
}
