//! The staff dashboard in a real headless Chromium, against the whole
//! pipeline (simulator → ingest → router → conversation → order →
//! outbound → notifier): what staff see and do, from signing in to a low
//! rating, in English and Arabic, across a dropped connection.
//!
//! Screenshots: `target/dashboard-screenshots/`. The browser tests take
//! turns (one Chromium at a time) so they do not starve each other on a
//! small machine; every wait is on a condition in the page.

use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;
use waiter_e2e::{browser::Browser, chat::*, Pipeline};
use waiter_harness::{eventually, proxy::Proxy};

static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const WIDE: (u32, u32) = (1366, 900);

/// The first restaurant's orders board, signed in.
async fn orders_board(p: &Pipeline) -> Browser {
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    sign_in_by_pasting(&browser, &format!("http://{}/", p.notifier), &p.token(0)).await;
    browser.click("[data-testid=tab-orders]").await;
    browser
}

/// Opens the dashboard at `base` and signs in by pasting the token.
async fn sign_in_by_pasting(browser: &Browser, base: &str, token: &str) {
    browser.goto(base).await;
    browser.type_into("[data-testid=token]", token).await;
    browser.click("[data-testid=sign-in]").await;
    wait_online(browser).await;
}

async fn wait_online(browser: &Browser) {
    browser
        .until(
            "the dashboard is connected",
            "return document.querySelector('[data-testid=tab-conversations]') \
             && !document.querySelector('[data-testid=offline]')",
            vec![],
        )
        .await;
}

/// How many elements match `css` (and contain `text`, when given): `n`.
const COUNT: &str = "const [css, text, expected] = arguments; \
     const n = [...document.querySelectorAll(css)].filter(e => !text || e.textContent.includes(text)).length;";

async fn count(browser: &Browser, css: &str, text: &str) -> u64 {
    browser
        .js(&format!("{COUNT} return n;"), vec![json!(css), json!(text)])
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Waits until exactly `n` elements match.
async fn until_count(browser: &Browser, what: &str, css: &str, text: &str, n: u64) {
    browser
        .until(
            what,
            &format!("{COUNT} return n === expected;"),
            vec![json!(css), json!(text), json!(n)],
        )
        .await;
}

async fn conversation_of(p: &Pipeline, customer: &str) -> Uuid {
    eventually("the conversation exists", WAIT, || async {
        sqlx::query_scalar("SELECT id FROM conversations WHERE customer = $1")
            .bind(customer)
            .fetch_optional(p.env.pool())
            .await
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_see_a_customer_live_and_reply_which_pauses_the_bot() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    let base = format!("http://{}/", p.notifier);

    // A bad token is refused on the page, with a reason.
    browser.goto(&base).await;
    browser
        .type_into("[data-testid=token]", "not-a-token")
        .await;
    browser.click("[data-testid=sign-in]").await;
    until_count(
        &browser,
        "a bad token is refused",
        "[data-testid=auth-message]",
        "",
        1,
    )
    .await;
    browser
        .js("document.querySelector('[data-testid=token]').value = ''; document.querySelector('[data-testid=token]').dispatchEvent(new Event('input'));", vec![])
        .await;
    browser.type_into("[data-testid=token]", &p.token(0)).await;
    browser.click("[data-testid=sign-in]").await;
    wait_online(&browser).await;

    // A customer writes: the conversation and the message appear live.
    let chat = Chat::new(&p, r, customer(71), Some("Reem"));
    chat.text("hello").await;
    let cid = conversation_of(&p, &chat.from).await;
    let row = format!("[data-conversation-id='{cid}']");
    until_count(&browser, "the conversation is listed", &row, "Reem", 1).await;
    browser.click(&format!("button{row}")).await;
    until_count(
        &browser,
        "the customer's message shows",
        ".message.in",
        "hello",
        1,
    )
    .await;
    until_count(
        &browser,
        "the bot's answer shows",
        ".message.out.bot",
        "",
        1,
    )
    .await;
    let bot = browser
        .js(
            "return document.querySelector('[data-testid=bot-status]').dataset.botActive",
            vec![],
        )
        .await;
    assert_eq!(bot, json!("true"));
    browser.screenshot("1-conversation-bot-answering").await;

    // Staff reply: it reaches the customer through the simulator, shows in
    // the thread with its ticks, and the bot is shown paused.
    let reply = "Hi Reem, this is Omar from the kitchen — your usual?";
    browser.type_into("[data-testid=reply]", reply).await;
    browser.click("[data-testid=send]").await;
    chat.received("this is Omar from the kitchen").await;
    until_count(
        &browser,
        "the staff reply shows",
        ".message.out.staff",
        "Omar",
        1,
    )
    .await;
    browser
        .until(
            "the bot shows paused",
            "return document.querySelector('[data-testid=bot-status]').dataset.botActive === 'false'",
            vec![],
        )
        .await;
    browser
        .until(
            "the staff reply is delivered",
            "const m = [...document.querySelectorAll('.message.out.staff')].pop(); \
             return m && ['delivered', 'read'].includes(m.dataset.status)",
            vec![],
        )
        .await;
    let (bot_active,): (bool,) =
        sqlx::query_as("SELECT bot_active FROM conversations WHERE id = $1")
            .bind(cid)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
    assert!(
        !bot_active,
        "the page says paused because the bot is paused"
    );
    // Opening the conversation marked it read.
    let unread: i32 = sqlx::query_scalar("SELECT unread_count FROM conversations WHERE id = $1")
        .bind(cid)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
    assert_eq!(unread, 0);
    browser.screenshot("2-conversation-staff-took-over").await;

    // Hand back to the bot.
    browser.click("[data-testid=bot-toggle]").await;
    browser
        .until(
            "the bot is back",
            "return document.querySelector('[data-testid=bot-status]').dataset.botActive === 'true'",
            vec![],
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_by_chatting_is_moved_on_the_board_and_its_low_rating_stands_out() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    sqlx::query("UPDATE restaurants SET customer_rate_per_minute = 100 WHERE id = $1")
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    let browser = orders_board(&p).await;

    let chat = Chat::new(&p, r, customer(72), Some("Faisal"));
    let order = place_order(&chat, None).await;
    let card = format!("[data-order-id='{}']", order.id);
    until_count(
        &browser,
        "the new order is on the board",
        &format!("[data-testid=column-CONFIRMED] {card}.fresh"),
        &format!("#{}", order.number),
        1,
    )
    .await;
    until_count(
        &browser,
        "a new-order alert shows",
        "[data-testid=alert-order]",
        &format!("#{}", order.number),
        1,
    )
    .await;
    // The card says what, who, where and for how much.
    let text = browser
        .js(
            &format!("return document.querySelector(\"{card}\").textContent"),
            vec![],
        )
        .await;
    let text = text.as_str().unwrap();
    for needle in ["Faisal", "Chicken Shish Tawook", "Delivery", ADDRESS, "SAR"] {
        assert!(text.contains(needle), "{needle} on the card: {text}");
    }
    // Only the legal next steps are offered.
    let offered = browser
        .js(
            &format!("return [...document.querySelectorAll(\"{card} .actions button\")].map(b => b.dataset.testid)"),
            vec![],
        )
        .await;
    assert_eq!(offered, json!(["move-PREPARING", "move-CANCELLED"]));
    browser.screenshot("3-board-new-order").await;

    for (step, column) in [
        ("PREPARING", "PREPARING"),
        ("OUT_FOR_DELIVERY", "OUT_FOR_DELIVERY"),
        ("DELIVERED", "DELIVERED"),
    ] {
        browser
            .click(&format!("{card} [data-testid=move-{step}]"))
            .await;
        until_count(
            &browser,
            &format!("the order moves to {column}"),
            &format!("[data-testid=column-{column}] {card}"),
            "",
            1,
        )
        .await;
        let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(order.id)
            .fetch_one(p.env.pool())
            .await
            .unwrap();
        assert_eq!(status, step);
        if step == "PREPARING" {
            browser.screenshot("4-board-preparing").await;
        }
    }
    chat.received(&format!("Order #{} has been delivered", order.number))
        .await;

    // The customer rates it 2: the card moves to Rated, marked low, with an alert.
    let prompt = chat.last_sent("rating_prompt").await;
    chat.tap(&opt(
        std::slice::from_ref(&prompt),
        &format!("rate:{}:now", order.id),
        "",
    ))
    .await;
    chat.text("2").await;
    until_count(
        &browser,
        "the low rating stands out",
        &format!("[data-testid=column-RATED] {card}.low [data-testid=low-rating]"),
        "",
        1,
    )
    .await;
    until_count(
        &browser,
        "a low-rating alert shows",
        "[data-testid=alert-low_rating]",
        &format!("#{}", order.number),
        1,
    )
    .await;
    let stars = browser
        .js(
            &format!("return document.querySelector(\"{card} .stars\").textContent"),
            vec![],
        )
        .await;
    assert_eq!(stars, json!("★★☆☆☆"));
    assert_eq!(
        count(&browser, &format!("{card} .actions button"), "").await,
        0,
        "nothing more to do"
    );
    browser.screenshot("5-board-low-rating").await;

    // The analytics show the day's order and the rating.
    browser.click("[data-testid=tab-analytics]").await;
    browser
        .until(
            "the analytics count the order",
            "const k = document.querySelector('[data-testid=kpi-orders] strong'); return k && k.textContent === '1'",
            vec![],
        )
        .await;
    let average = browser
        .js(
            "return document.querySelector('[data-testid=kpi-average] strong').textContent",
            vec![],
        )
        .await;
    assert_eq!(average, json!("2.00"));
    assert!(count(&browser, ".analytics canvas", "").await >= 3);
    browser.screenshot("6-analytics").await;
    browser.close().await;
}

/// Another till (or the kitchen screen) moved the order before this board
/// heard of it: the move is refused with 409, the board says so in words
/// and shows the order as it now is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_refused_with_409_is_explained_and_the_card_shows_the_order_as_it_is() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let browser = orders_board(&p).await;

    let chat = Chat::new(&p, r, customer(73), Some("Huda"));
    let order = place_order(&chat, None).await;
    let card = format!("[data-order-id='{}']", order.id);
    until_count(
        &browser,
        "the new order is on the board",
        &format!("[data-testid=column-CONFIRMED] {card} [data-testid=move-PREPARING]"),
        "",
        1,
    )
    .await;
    // Cancelled behind this board's back: its event has not arrived.
    sqlx::query("UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE id = $1")
        .bind(order.id)
        .execute(p.env.pool())
        .await
        .unwrap();

    browser
        .click(&format!("{card} [data-testid=move-PREPARING]"))
        .await;
    until_count(
        &browser,
        "the refusal is explained",
        &format!("{card} [data-testid=order-problem]"),
        "this order changed meanwhile",
        1,
    )
    .await;
    let problem = browser
        .js(
            &format!(
                "return document.querySelector(\"{card} [data-testid=order-problem]\").textContent"
            ),
            vec![],
        )
        .await;
    assert!(
        problem.as_str().unwrap().contains("CANCELLED"),
        "the server's reason is shown: {problem}"
    );
    until_count(
        &browser,
        "the card shows the order as it is now",
        &format!("[data-testid=column-CANCELLED] {card}"),
        "",
        1,
    )
    .await;
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order.id)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
    assert_eq!(status, "CANCELLED", "the refused move changed nothing");
    browser.screenshot("5b-board-conflict").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_signs_in_arabic_is_right_to_left_and_an_expired_session_asks_again() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let p = Pipeline::start_with(waiter_e2e::Options {
        restaurants: vec![("bait", "ar")],
        ..Default::default()
    })
    .await;
    let r = p.restaurant(0);
    let chat = Chat::new(&p, r, customer(73), Some("نورة"));
    chat.text("مرحبا").await;
    // A tablet held upright.
    let browser = Browser::start(820, 1180).await;
    let token = waiter_harness::jwt::token(waiter_e2e::JWT_SECRET, r.id, "staff", 3600);
    browser
        .goto(&format!("http://{}/#token={token}", p.notifier))
        .await;
    wait_online(&browser).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("token"),
        "the token leaves the address bar: {url}"
    );

    browser.click("[data-testid=language]").await;
    let (dir, lang) = (
        browser
            .js("return document.documentElement.dir", vec![])
            .await,
        browser
            .js("return document.documentElement.lang", vec![])
            .await,
    );
    assert_eq!((dir, lang), (json!("rtl"), json!("ar")));
    until_count(
        &browser,
        "the Arabic conversation is listed",
        "[data-testid=conversation]",
        "نورة",
        1,
    )
    .await;
    // Right to left: the tabs start at the right, and a customer's message
    // sits on the right of the thread.
    let tabs_right = browser
        .js(
            "const t = document.querySelector('.tabs').getBoundingClientRect(); \
             const b = document.querySelector('.brand').getBoundingClientRect(); return b.left > t.left",
            vec![],
        )
        .await;
    assert_eq!(tabs_right, json!(true), "the brand is at the right end");
    browser.screenshot("7-arabic-conversations").await;
    browser.click("[data-testid=conversation]").await;
    until_count(&browser, "the thread opens", ".message.in", "مرحبا", 1).await;
    let sides = browser
        .js(
            "const box = document.querySelector('.messages').getBoundingClientRect(); \
             const m = document.querySelector('.message.in').getBoundingClientRect(); \
             return [m.right > box.left + box.width / 2, m.left > box.left + box.width * 0.2]",
            vec![],
        )
        .await;
    assert_eq!(
        sides,
        json!([true, true]),
        "inbound messages on the right in Arabic"
    );
    // Touch targets: every button is at least 44 px high.
    let small: Value = browser
        .js(
            "return [...document.querySelectorAll('button')].filter(b => b.offsetParent && b.getBoundingClientRect().height < 44).map(b => b.textContent)",
            vec![],
        )
        .await;
    assert_eq!(small, json!([]), "buttons under 44 px");
    browser.screenshot("8-arabic-thread-tablet").await;
    browser.click("[data-testid=tab-orders]").await;
    browser.screenshot("9-arabic-board-tablet").await;
    browser.close().await;

    // A token about to expire: the page asks to sign in again when it does.
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    let short = waiter_harness::jwt::token(waiter_e2e::JWT_SECRET, r.id, "staff", 3);
    browser
        .goto(&format!("http://{}/#token={short}", p.notifier))
        .await;
    browser
        .until(
            "the expired session asks to sign in",
            "const m = document.querySelector('[data-testid=auth-message]'); return m && m.textContent",
            vec![],
        )
        .await;
    assert_eq!(count(&browser, "[data-testid=token]", "").await, 1);
    browser.screenshot("10-session-expired").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_socket_is_cut_and_restored_the_missed_message_is_shown_once() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    // The browser reaches the notifier through a proxy the test can cut.
    let proxy = Proxy::start(p.notifier).await;
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    sign_in_by_pasting(&browser, &format!("http://{}/", proxy.addr()), &p.token(0)).await;

    let chat = Chat::new(&p, r, customer(74), Some("Sami"));
    chat.text("first message").await;
    let cid = conversation_of(&p, &chat.from).await;
    browser
        .click(&format!("button[data-conversation-id='{cid}']"))
        .await;
    until_count(
        &browser,
        "the first message shows",
        ".message.in",
        "first message",
        1,
    )
    .await;

    proxy.cut();
    until_count(
        &browser,
        "the offline banner shows",
        "[data-testid=offline]",
        "",
        1,
    )
    .await;
    browser.screenshot("11-offline").await;
    // Sent while the dashboard is offline.
    let missed = chat
        .post(chat.spec("the message sent while you were offline"))
        .await;
    proxy.restore();
    until_count(
        &browser,
        "the banner goes away",
        "[data-testid=offline]",
        "",
        0,
    )
    .await;
    until_count(
        &browser,
        "the missed message shows",
        &format!("[data-message-id='{missed}']"),
        "",
        1,
    )
    .await;
    // Nothing twice: once the thread has every stored message, each shows once.
    let stored: i64 = eventually("every reply is stored and sent", WAIT, || async {
        let (all, unsent): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE direction = 'out' AND wa_sid IS NULL) \
             FROM messages WHERE conversation_id = $1",
        )
        .bind(cid)
        .fetch_one(p.env.pool())
        .await
        .unwrap();
        (unsent == 0).then_some(all)
    })
    .await;
    until_count(
        &browser,
        "the thread has every message",
        "[data-testid=message]",
        "",
        stored as u64,
    )
    .await;
    let ids = browser
        .js("return [...document.querySelectorAll('[data-testid=message]')].map(m => m.dataset.messageId)", vec![])
        .await;
    let ids: Vec<String> = serde_json::from_value(ids).unwrap();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no message twice: {ids:?}");
    assert_eq!(
        count(&browser, ".message.in", "while you were offline").await,
        1
    );
    browser.screenshot("12-reconnected").await;
    browser.close().await;
}
