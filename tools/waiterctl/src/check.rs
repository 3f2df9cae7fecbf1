//! Pure checks of what operators type, each returning the problem as a
//! sentence naming the flag.

pub fn slug(s: &str) -> Result<(), String> {
    let ok = (2..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        format!(
            "--slug {s:?}: 2-40 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    })
}

pub fn code(flag: &str, s: &str) -> Result<(), String> {
    slug(s).map_err(|_| format!("{flag} {s:?}: 2-40 characters of a-z, 0-9 and '-'"))
}

fn e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
    })
}

/// The restaurant's WhatsApp sender as Twilio writes it: `whatsapp:+E164`.
pub fn whatsapp_number(s: &str) -> Result<(), String> {
    s.strip_prefix("whatsapp:")
        .filter(|n| e164(n))
        .map(|_| ())
        .ok_or_else(|| format!("--number {s:?}: must be whatsapp:+<country code and number>, e.g. whatsapp:+966500000000"))
}

/// A staff number: `+E164` or `whatsapp:+E164`.
pub fn staff_number(s: &str) -> Result<(), String> {
    let n = s.strip_prefix("whatsapp:").unwrap_or(s);
    e164(n).then_some(()).ok_or_else(|| {
        format!("--staff-number {s:?}: must be +<country code and number> (or whatsapp:+…)")
    })
}

fn sid(flag: &str, s: &str, prefix: &str) -> Result<(), String> {
    let ok =
        s.len() == 34 && s.starts_with(prefix) && s[2..].chars().all(|c| c.is_ascii_hexdigit());
    ok.then_some(())
        .ok_or_else(|| format!("{flag} {s:?}: must be {prefix} followed by 32 hex digits"))
}

pub fn account_sid(s: &str) -> Result<(), String> {
    sid("--account-sid", s, "AC")
}

pub fn messaging_service_sid(s: &str) -> Result<(), String> {
    sid("--messaging-service-sid", s, "MG")
}

pub fn content_sid(s: &str) -> Result<(), String> {
    sid("--sid", s, "HX")
}

pub fn language(s: &str) -> Result<(), String> {
    ["ar", "en"]
        .contains(&s)
        .then_some(())
        .ok_or_else(|| format!("--language {s:?}: must be ar or en"))
}

pub fn currency(s: &str) -> Result<(), String> {
    (s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()))
        .then_some(())
        .ok_or_else(|| format!("--currency {s:?}: must be an ISO 4217 code such as SAR"))
}

pub fn time_zone(s: &str) -> Result<(), String> {
    waiter_hours::time_zone(s)
        .map(|_| ())
        .map_err(|e| format!("--time-zone: {e}"))
}

pub fn positive(flag: &str, n: i32, max: i32) -> Result<(), String> {
    (1..=max)
        .contains(&n)
        .then_some(())
        .ok_or_else(|| format!("{flag} {n}: must be between 1 and {max}"))
}

pub fn url(flag: &str, s: &str) -> Result<(), String> {
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "https://".len()
        && !s.contains(char::is_whitespace);
    ok.then_some(())
        .ok_or_else(|| format!("{flag} {s:?}: must be an http(s) URL"))
}

/// An amount in major units (`10`, `10.50`) as minor units.
pub fn amount(flag: &str, s: &str) -> Result<i64, String> {
    waiter_migrations::menu::file::parse_price(s.trim())
        .map_err(|rule| format!("{flag} {s:?}: {rule}"))
}

/// Collects every problem; `Err` lists them all.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn check(&mut self, result: Result<(), String>) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    pub fn value<T>(&mut self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn finish(self) -> anyhow::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", self.0.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_input_is_checked_with_the_flag_named() {
        assert!(slug("bait-grill").is_ok());
        assert!(slug("Bait Grill").unwrap_err().contains("--slug"));
        assert!(whatsapp_number("whatsapp:+966500000000").is_ok());
        assert!(whatsapp_number("+966500000000")
            .unwrap_err()
            .contains("--number"));
        assert!(staff_number("+966500000001").is_ok());
        assert!(staff_number("whatsapp:+966500000001").is_ok());
        assert!(staff_number("0500").is_err());
        assert!(account_sid(&format!("AC{}", "a".repeat(32))).is_ok());
        assert!(account_sid("AC123").unwrap_err().contains("32 hex"));
        assert!(content_sid(&format!("HX{}", "0".repeat(32))).is_ok());
        assert!(currency("SAR").is_ok() && currency("sar").is_err());
        assert!(time_zone("Asia/Riyadh").is_ok() && time_zone("Riyadh").is_err());
        assert_eq!(amount("--delivery-fee", "10.50"), Ok(1050));
        assert!(amount("--delivery-fee", "-1").is_err());
        assert!(url("--payment-link-base", "https://pay.example.com").is_ok());
        assert!(url("--payment-link-base", "pay.example.com").is_err());
        assert!(positive("--outbound-rate", 0, 400).is_err());
    }
}
