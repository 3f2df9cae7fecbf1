//! The simulator against a real HTTP receiver (standing in for Waiter's
//! ingest) and a real HTTP client (standing in for Waiter's outbound stage).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use twilio_sim::{signature, Fault, InboundSpec, SimConfig, Simulator, StatusCallbackMode};
use warp::{http::HeaderMap, Filter};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token-1";
const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
const OTHER_TOKEN: &str = "test-auth-token-2";
const BUSINESS: &str = "whatsapp:+14155238886";
const CUSTOMER: &str = "whatsapp:+966501234567";
const TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A webhook receiver: records every request, answers TwiML on the webhook
// path and an empty 200 elsewhere.

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Hit {
    fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).expect("form-encoded body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
struct Receiver {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    changed: Arc<Notify>,
}

impl Receiver {
    fn start(shutdown: &CancellationToken) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let (record_hits, record_changed) = (hits.clone(), changed.clone());
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::query::<HashMap<String, String>>())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |path: warp::path::FullPath,
                      query: HashMap<String, String>,
                      headers: HeaderMap,
                      body: Bytes| {
                    let path = path.as_str().to_string();
                    let webhook = path == "/whatsapp/webhook";
                    record_hits.lock().expect("hits").push(Hit {
                        path,
                        query,
                        headers,
                        body,
                    });
                    record_changed.notify_waiters();
                    if webhook {
                        warp::http::Response::builder()
                            .status(200)
                            .header("content-type", "text/xml")
                            .body(TWIML.to_string())
                            .expect("response")
                    } else {
                        warp::http::Response::builder()
                            .status(200)
                            .body(String::new())
                            .expect("response")
                    }
                },
            );
        let (addr, server) = warp::serve(route)
            .bind_with_graceful_shutdown(([127, 0, 0, 1], 0), shutdown.clone().cancelled_owned());
        tokio::spawn(server);
        Receiver {
            base: format!("http://{addr}"),
            hits,
            changed,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Waits for `count` requests on `path`; returns what arrived by then.
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let hits = self.hits_on(path);
            if hits.len() >= count || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.hits_on(path);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers

struct Setup {
    sim: Simulator,
    receiver: Receiver,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn setup_with(adjust: impl FnOnce(&mut SimConfig)) -> Setup {
    let shutdown = CancellationToken::new();
    let receiver = Receiver::start(&shutdown);
    let mut config = SimConfig {
        webhook_url: receiver.url("/whatsapp/webhook"),
        accounts: vec![(ACCOUNT.to_string(), TOKEN.to_string())],
        ..SimConfig::default()
    };
    adjust(&mut config);
    let sim = Simulator::start(config, shutdown.clone())
        .await
        .expect("simulator starts");
    Setup {
        sim,
        receiver,
        _shutdown: shutdown.drop_guard(),
    }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
    raw.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A Messages API call as Waiter's outbound stage makes it.
async fn create_message(
    sim: &Simulator,
    path_account: &str,
    auth: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> (u16, Value) {
    let url = format!(
        "{}/2010-04-01/Accounts/{path_account}/Messages.json",
        sim.base_url()
    );
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(params).expect("form"));
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.expect("request reaches the simulator");
    let status = response.status().as_u16();
    let json = response.json::<Value>().await.expect("JSON body");
    (status, json)
}

async fn send_text(sim: &Simulator, body: &str) -> (u16, Value) {
    create_message(
        sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[("To", CUSTOMER), ("From", BUSINESS), ("Body", body)],
    )
    .await
}

fn assert_twilio_error(status: u16, json: &Value, http: u16, code: i64) {
    assert_eq!(status, http, "{json}");
    assert_eq!(json["code"], code, "{json}");
    assert_eq!(json["status"], http, "{json}");
    assert_eq!(
        json["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{json}"
    );
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

async fn open_window(sim: &Simulator) {
    let result = sim
        .send_inbound(InboundSpec::text(ACCOUNT, CUSTOMER, BUSINESS, "hello"))
        .await
        .expect("webhook posted");
    assert_eq!(result.status, 200);
}

// ---------------------------------------------------------------------------
// Customer side

#[tokio::test]
async fn inbound_webhook_has_twilio_fields_and_valid_signature() {
    let s = setup_with(|c| {
        c.webhook_url = c
            .webhook_url
            .replace("/whatsapp/webhook", "/whatsapp/webhook?tenant=demo");
    })
    .await;
    let webhook_url = s.receiver.url("/whatsapp/webhook?tenant=demo");

    let result = s
        .sim
        .send_inbound(
            InboundSpec::text(ACCOUNT, CUSTOMER, BUSINESS, "Hi, menu please")
                .with_profile_name("Ahmed"),
        )
        .await
        .expect("webhook posted");

    assert_eq!(result.status, 200);
    assert_eq!(result.body, TWIML);
    assert_eq!(result.content_type.as_deref(), Some("text/xml"));
    assert!(is_sid(&result.message_sid, "SM"), "{}", result.message_sid);

    let hits = s.receiver.hits_on("/whatsapp/webhook");
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!(hit.query.get("tenant").map(String::as_str), Some("demo"));
    assert_eq!(
        hit.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(hit.header("user-agent"), Some("TwilioProxy/1.1"));

    let form = hit.form();
    assert_eq!(form, result.params, "the result reports the form as posted");
    let expected = [
        ("MessageSid", result.message_sid.as_str()),
        ("SmsMessageSid", result.message_sid.as_str()),
        ("SmsSid", result.message_sid.as_str()),
        ("AccountSid", ACCOUNT),
        ("From", CUSTOMER),
        ("To", BUSINESS),
        ("Body", "Hi, menu please"),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
        ("SmsStatus", "received"),
        ("MessageType", "text"),
        ("ProfileName", "Ahmed"),
        ("WaId", "966501234567"),
    ];
    for (name, value) in expected {
        assert_eq!(get(&form, name), Some(value), "{name} in {form:?}");
    }

    let header = hit.header("x-twilio-signature").expect("signature header");
    assert_eq!(header, signature::sign(TOKEN, &webhook_url, &form));
    assert_eq!(header, s.sim.signed_params(ACCOUNT, &webhook_url, &form));
    // The check can fail: another token, or the URL without its query.
    assert_ne!(header, signature::sign(OTHER_TOKEN, &webhook_url, &form));
    assert_ne!(
        header,
        signature::sign(TOKEN, &s.receiver.url("/whatsapp/webhook"), &form)
    );
}

#[tokio::test]
async fn inbound_body_and_repeated_params_are_encoded_byte_exactly() {
    let s = setup().await;
    let body = format!("مرحبا 👋🏽 شاورما & fries = 2+1 100% {}", "ل".repeat(1700));
    let spec = InboundSpec::text(ACCOUNT, "whatsapp:ahmed.42", BUSINESS, body.clone())
        .with_param(
            "MediaUrl0",
            "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
        )
        .with_param("MediaContentType0", "image/jpeg")
        .with_param("ListId", "item-1")
        .with_param("ListId", "item 2&x=y");
    let result = s.sim.send_inbound(spec).await.expect("webhook posted");
    assert!(is_sid(&result.message_sid, "MM"), "{}", result.message_sid);

    let hit = &s.receiver.hits_on("/whatsapp/webhook")[0];
    let form = hit.form();
    assert_eq!(get(&form, "Body"), Some(body.as_str()));
    assert_eq!(get(&form, "NumMedia"), Some("1"));
    assert_eq!(get(&form, "WaId"), None, "username senders have no WaId");
    let list_ids: Vec<&str> = form
        .iter()
        .filter(|(n, _)| n == "ListId")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(list_ids, ["item-1", "item 2&x=y"]);
    assert_eq!(
        hit.header("x-twilio-signature"),
        Some(signature::sign(TOKEN, &s.receiver.url("/whatsapp/webhook"), &form).as_str())
    );
}

#[tokio::test]
async fn raw_webhook_posts_exactly_what_it_is_given() {
    let s = setup().await;
    let params = pairs(&[("MessageSid", "SMraw"), ("Body", "x")]);

    let unsigned = s
        .sim
        .post_webhook_raw("/whatsapp/webhook", params.clone(), None)
        .await
        .expect("posted");
    assert_eq!(unsigned.status, 200);
    assert_eq!(unsigned.message_sid, "SMraw");

    let signed = s
        .sim
        .post_webhook_raw(
            &s.receiver.url("/whatsapp/webhook"),
            params.clone(),
            Some("bogus".to_string()),
        )
        .await
        .expect("posted");
    assert_eq!(signed.status, 200);

    let hits = s.receiver.hits_on("/whatsapp/webhook");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].header("x-twilio-signature"), None);
    assert_eq!(hits[1].header("x-twilio-signature"), Some("bogus"));
    assert_eq!(hits[0].form(), params);
}

#[tokio::test]
async fn behind_a_proxy_posts_to_post_url_but_signs_the_public_url() {
    let public = "https://waiter.example.com/whatsapp/webhook";
    let s = setup_with(|c| {
        c.post_url = Some(c.webhook_url.clone());
        c.webhook_url = public.to_string();
    })
    .await;
    open_window(&s.sim).await;

    let hit = &s.receiver.hits_on("/whatsapp/webhook")[0];
    assert_eq!(
        hit.header("x-twilio-signature"),
        Some(signature::sign(TOKEN, public, &hit.form()).as_str())
    );

    // A status callback on the public origin goes through the proxy too.
    let public_status = "https://waiter.example.com/whatsapp/status";
    let (status, _) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[
            ("To", CUSTOMER),
            ("From", BUSINESS),
            ("Body", "ok"),
            ("StatusCallback", public_status),
        ],
    )
    .await;
    assert_eq!(status, 201);
    let callbacks = s.receiver.wait_for("/whatsapp/status", 3).await;
    assert_eq!(callbacks.len(), 3);
    for hit in &callbacks {
        assert_eq!(
            hit.header("x-twilio-signature"),
            Some(signature::sign(TOKEN, public_status, &hit.form()).as_str())
        );
    }
}

// ---------------------------------------------------------------------------
// Messages API

#[tokio::test]
async fn messages_api_answers_201_with_twilio_json_and_records_the_message() {
    let s = setup().await;
    open_window(&s.sim).await;

    let (status, json) = send_text(&s.sim, "Your order is confirmed ✅").await;
    assert_eq!(status, 201, "{json}");
    let sid = json["sid"].as_str().expect("sid").to_string();
    assert!(is_sid(&sid, "SM"), "{sid}");
    assert_eq!(json["status"], "queued");
    assert_eq!(json["account_sid"], ACCOUNT);
    assert_eq!(json["from"], BUSINESS);
    assert_eq!(json["to"], CUSTOMER);
    assert_eq!(json["body"], "Your order is confirmed ✅");
    assert_eq!(json["num_media"], "0");
    assert_eq!(json["num_segments"], "1");
    assert_eq!(json["direction"], "outbound-api");
    assert_eq!(json["api_version"], "2010-04-01");
    assert_eq!(json["date_sent"], Value::Null);
    assert_eq!(json["error_code"], Value::Null);
    assert_eq!(json["error_message"], Value::Null);
    assert_eq!(json["price"], Value::Null);
    assert_eq!(json["price_unit"], "USD");
    assert_eq!(json["messaging_service_sid"], Value::Null);
    assert_eq!(
        json["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")
    );
    assert!(json["subresource_uris"]["media"].is_string(), "{json}");
    for field in ["date_created", "date_updated"] {
        let date = json[field].as_str().expect(field);
        chrono::DateTime::parse_from_rfc2822(date).expect("RFC 2822 date");
    }

    let sent = s.sim.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].sid, sid);
    assert_eq!(sent[0].account_sid, ACCOUNT);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(sent[0].from.as_deref(), Some(BUSINESS));
    assert_eq!(sent[0].body.as_deref(), Some("Your order is confirmed ✅"));
    assert_eq!(s.sim.sent_to(CUSTOMER), sent);
    assert!(s.sim.sent_to("whatsapp:+10000000000").is_empty());
    let waited = s.sim.wait_for_sent(CUSTOMER, 1, WAIT).await;
    assert_eq!(waited, sent);

    let requests = s.sim.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].http_status, 201);
    assert_eq!(requests[0].sid.as_deref(), Some(sid.as_str()));
    assert_eq!(
        requests[0].param("Body"),
        Some("Your order is confirmed ✅")
    );
}

#[tokio::test]
async fn media_and_repeated_media_urls_are_recorded() {
    let s = setup().await;
    open_window(&s.sim).await;
    let (status, json) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[
            ("To", CUSTOMER),
            ("From", BUSINESS),
            ("MediaUrl", "https://example.com/a.jpg"),
            ("MediaUrl", "https://example.com/b.jpg"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{json}");
    assert_eq!(json["num_media"], "2");
    assert_eq!(
        s.sim.sent()[0].media_urls,
        ["https://example.com/a.jpg", "https://example.com/b.jpg"]
    );
}

#[tokio::test]
async fn bad_basic_auth_is_401_with_code_20003() {
    let s = setup_with(|c| {
        c.accounts
            .push((OTHER_ACCOUNT.to_string(), OTHER_TOKEN.to_string()))
    })
    .await;
    open_window(&s.sim).await;
    let params = [("To", CUSTOMER), ("From", BUSINESS), ("Body", "hi")];

    let cases: [(&str, Option<(&str, &str)>); 4] = [
        (ACCOUNT, Some((ACCOUNT, "wrong-token"))),
        (ACCOUNT, None),
        (
            "AC00000000000000000000000000000000",
            Some(("AC00000000000000000000000000000000", TOKEN)),
        ),
        // Valid credentials of another account on this account's path.
        (ACCOUNT, Some((OTHER_ACCOUNT, OTHER_TOKEN))),
    ];
    for (path_account, auth) in cases {
        let (status, json) = create_message(&s.sim, path_account, auth, &params).await;
        assert_twilio_error(status, &json, 401, 20003);
    }
    assert!(s.sim.sent().is_empty());
    assert_eq!(s.sim.requests().len(), 4);
    assert!(s.sim.requests().iter().all(|r| r.http_status == 401));

    // The right credentials still work.
    let (status, json) = send_text(&s.sim, "hi").await;
    assert_eq!(status, 201, "{json}");
}

#[tokio::test]
async fn invalid_sends_get_twilio_400_codes() {
    let s = setup().await;
    open_window(&s.sim).await;
    let long = "x".repeat(1601);
    let cases: Vec<(Vec<(&str, &str)>, i64)> = vec![
        (vec![("From", BUSINESS), ("Body", "hi")], 21604),
        (vec![("To", ""), ("From", BUSINESS), ("Body", "hi")], 21604),
        (vec![("To", CUSTOMER), ("Body", "hi")], 21603),
        (
            vec![("To", "+966501234567"), ("From", BUSINESS), ("Body", "hi")],
            21211,
        ),
        (vec![("To", CUSTOMER), ("From", BUSINESS)], 21619),
        (
            vec![("To", CUSTOMER), ("From", BUSINESS), ("Body", &long)],
            21617,
        ),
    ];
    for (params, code) in cases {
        let (status, json) = create_message(&s.sim, ACCOUNT, Some((ACCOUNT, TOKEN)), &params).await;
        assert_twilio_error(status, &json, 400, code);
    }
    assert!(s.sim.sent().is_empty());

    // Exactly 1600 characters (multi-byte ones) is fine.
    let (status, json) = send_text(&s.sim, &"م".repeat(1600)).await;
    assert_eq!(status, 201, "{json}");
}

#[tokio::test]
async fn injected_429_fails_once_then_the_retry_succeeds() {
    let s = setup().await;
    open_window(&s.sim).await;
    s.sim.inject_fault(Fault::new(429, 20429));

    let (status, json) = send_text(&s.sim, "first try").await;
    assert_twilio_error(status, &json, 429, 20429);
    assert!(s.sim.sent().is_empty());

    let (status, json) = send_text(&s.sim, "first try").await;
    assert_eq!(status, 201, "{json}");

    let requests = s.sim.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.http_status).collect();
    assert_eq!(statuses, [429, 201]);
    assert_eq!(requests[0].error_code, Some(20429));
    assert_eq!(s.sim.sent().len(), 1);
}

#[tokio::test]
async fn faults_can_target_one_recipient_and_repeat() {
    let s = setup().await;
    let other = "whatsapp:+15550001111";
    s.sim
        .set_last_inbound(BUSINESS, other, Some(chrono::Utc::now()));
    open_window(&s.sim).await;
    s.sim
        .inject_fault(Fault::new(500, 20500).times(2).only_to(other));

    let (status, _) = send_text(&s.sim, "unaffected").await;
    assert_eq!(status, 201);
    for _ in 0..2 {
        let (status, json) = create_message(
            &s.sim,
            ACCOUNT,
            Some((ACCOUNT, TOKEN)),
            &[("To", other), ("From", BUSINESS), ("Body", "hi")],
        )
        .await;
        assert_twilio_error(status, &json, 500, 20500);
    }
    let (status, _) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[("To", other), ("From", BUSINESS), ("Body", "hi")],
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn session_window_refuses_free_form_until_the_customer_writes() {
    let s = setup().await;

    let (status, json) = send_text(&s.sim, "never contacted").await;
    assert_twilio_error(status, &json, 400, 63016);

    // An approved template may go outside the window.
    let (status, json) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[
            ("To", CUSTOMER),
            ("From", BUSINESS),
            ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
            ("ContentVariables", r#"{"1":"Ahmed"}"#),
        ],
    )
    .await;
    assert_eq!(status, 201, "{json}");

    open_window(&s.sim).await;
    let (status, json) = send_text(&s.sim, "inside the window").await;
    assert_eq!(status, 201, "{json}");

    // The window is per business number.
    let (status, json) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[
            ("To", CUSTOMER),
            ("From", "whatsapp:+15005550006"),
            ("Body", "hi"),
        ],
    )
    .await;
    assert_twilio_error(status, &json, 400, 63016);

    // 25 hours later it is closed again.
    s.sim.set_last_inbound(
        BUSINESS,
        CUSTOMER,
        Some(chrono::Utc::now() - chrono::Duration::hours(25)),
    );
    let (status, json) = send_text(&s.sim, "too late").await;
    assert_twilio_error(status, &json, 400, 63016);

    let sent = s.sim.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].content_sid.as_deref(),
        Some("HX0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        sent[0].content_variables.as_deref(),
        Some(r#"{"1":"Ahmed"}"#)
    );
}

#[tokio::test]
async fn session_window_can_be_turned_off() {
    let s = setup_with(|c| c.enforce_session_window = false).await;
    let (status, json) = send_text(&s.sim, "no window checks").await;
    assert_eq!(status, 201, "{json}");
}

#[tokio::test]
async fn wait_for_sent_returns_what_it_has_at_timeout() {
    let s = setup().await;
    open_window(&s.sim).await;
    let waiter = {
        let sim = s.sim.clone();
        tokio::spawn(async move { sim.wait_for_sent(CUSTOMER, 2, WAIT).await })
    };
    send_text(&s.sim, "one").await;
    send_text(&s.sim, "two").await;
    let got = waiter.await.expect("join");
    assert_eq!(got.len(), 2);

    let short = s
        .sim
        .wait_for_sent(CUSTOMER, 3, Duration::from_millis(50))
        .await;
    assert_eq!(short.len(), 2);
}

// ---------------------------------------------------------------------------
// Status callbacks

async fn send_with_callback(s: &Setup) -> String {
    open_window(&s.sim).await;
    let (status, json) = create_message(
        &s.sim,
        ACCOUNT,
        Some((ACCOUNT, TOKEN)),
        &[
            ("To", CUSTOMER),
            ("From", BUSINESS),
            ("Body", "Your order is on its way"),
            ("StatusCallback", &s.receiver.url("/whatsapp/status")),
        ],
    )
    .await;
    assert_eq!(status, 201, "{json}");
    json["sid"].as_str().expect("sid").to_string()
}

fn check_callback(hit: &Hit, url: &str, sid: &str) -> (String, Option<String>) {
    let form = hit.form();
    assert_eq!(
        hit.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        hit.header("x-twilio-signature"),
        Some(signature::sign(TOKEN, url, &form).as_str()),
        "callback signature"
    );
    assert_eq!(get(&form, "MessageSid"), Some(sid));
    assert_eq!(get(&form, "SmsSid"), Some(sid));
    assert_eq!(get(&form, "AccountSid"), Some(ACCOUNT));
    assert_eq!(get(&form, "From"), Some(BUSINESS));
    assert_eq!(get(&form, "To"), Some(CUSTOMER));
    assert_eq!(get(&form, "ApiVersion"), Some("2010-04-01"));
    assert_eq!(get(&form, "ChannelPrefix"), Some("whatsapp"));
    let status = get(&form, "MessageStatus")
        .expect("MessageStatus")
        .to_string();
    assert_eq!(get(&form, "SmsStatus"), Some(status.as_str()));
    (status, get(&form, "EventType").map(str::to_string))
}

#[tokio::test]
async fn status_callbacks_arrive_signed_in_order() {
    let s = setup().await;
    let sid = send_with_callback(&s).await;
    let url = s.receiver.url("/whatsapp/status");

    let hits = s.receiver.wait_for("/whatsapp/status", 3).await;
    assert_eq!(hits.len(), 3);
    let seen: Vec<(String, Option<String>)> =
        hits.iter().map(|h| check_callback(h, &url, &sid)).collect();
    assert_eq!(
        seen,
        [
            ("sent".to_string(), None),
            ("delivered".to_string(), Some("DELIVERED".to_string())),
            ("read".to_string(), Some("READ".to_string())),
        ]
    );
    assert_eq!(
        s.sim.sent()[0].status_callback.as_deref(),
        Some(url.as_str())
    );
}

#[tokio::test]
async fn shuffled_status_callbacks_all_arrive() {
    let s = setup_with(|c| c.status_callbacks = StatusCallbackMode::Shuffled).await;
    let sid = send_with_callback(&s).await;
    let url = s.receiver.url("/whatsapp/status");
    let hits = s.receiver.wait_for("/whatsapp/status", 3).await;
    let mut statuses: Vec<String> = hits
        .iter()
        .map(|h| check_callback(h, &url, &sid).0)
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["delivered", "read", "sent"]);
}

// ---------------------------------------------------------------------------
// The HTTP endpoints for humans and `just up`

#[tokio::test]
async fn sim_http_endpoints() {
    let s = setup().await;
    let client = reqwest::Client::new();
    let base = s.sim.base_url();

    let health = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200);

    // account_sid may be omitted with one account configured.
    let response = client
        .post(format!("{base}/sim/inbound"))
        .json(&serde_json::json!({
            "from": CUSTOMER,
            "to": BUSINESS,
            "body": "1 shawarma",
            "profile_name": "Ahmed",
            "extra": {"ButtonPayload": "order:1"}
        }))
        .send()
        .await
        .expect("inbound");
    assert_eq!(response.status().as_u16(), 200);
    let result: twilio_sim::WebhookResult = response.json().await.expect("WebhookResult JSON");
    assert_eq!(result.status, 200);
    let hit = &s.receiver.hits_on("/whatsapp/webhook")[0];
    assert_eq!(get(&hit.form(), "ButtonPayload"), Some("order:1"));
    assert_eq!(get(&hit.form(), "AccountSid"), Some(ACCOUNT));

    let response = client
        .post(format!("{base}/sim/faults"))
        .json(&serde_json::json!({"http_status": 503, "code": 20503}))
        .send()
        .await
        .expect("fault");
    assert_eq!(response.status().as_u16(), 201);
    let (status, json) = send_text(&s.sim, "hi").await;
    assert_twilio_error(status, &json, 503, 20503);
    let (status, _) = send_text(&s.sim, "hi").await;
    assert_eq!(status, 201);

    let listed: Vec<twilio_sim::SentMessage> = client
        .get(format!("{base}/sim/messages"))
        .query(&[("to", CUSTOMER)])
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("JSON list");
    assert_eq!(listed, s.sim.sent());
    let none: Vec<twilio_sim::SentMessage> = client
        .get(format!("{base}/sim/messages?to=whatsapp:%2B1999"))
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("JSON list");
    assert!(none.is_empty());

    let missing = client
        .get(format!("{base}/2010-04-01/Nothing.json"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status().as_u16(), 404);
    let json: Value = missing.json().await.expect("JSON error");
    assert_eq!(json["code"], 20404);
}

#[tokio::test]
async fn accounts_added_later_are_accepted() {
    let s = setup().await;
    s.sim.add_account(OTHER_ACCOUNT, OTHER_TOKEN);
    s.sim
        .set_last_inbound(BUSINESS, CUSTOMER, Some(chrono::Utc::now()));
    let (status, json) = create_message(
        &s.sim,
        OTHER_ACCOUNT,
        Some((OTHER_ACCOUNT, OTHER_TOKEN)),
        &[("To", CUSTOMER), ("From", BUSINESS), ("Body", "hi")],
    )
    .await;
    assert_eq!(status, 201, "{json}");
}
