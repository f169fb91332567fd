//! Amounts and currency codes: `Money::parse`, `Currency`'s `FromStr`, money in JSON and a
//! fund's daily income.

use formica_core::fund::Income;
use formica_core::{Currency, Money, MoneyError};

use crate::error::money_error;

/// Longest decimal string `Money::parse` takes (its documented bound).
const DECIMAL_LEN_MAX: usize = 24;

/// The largest amount the books keep, in minor units.
const AMOUNT_MINOR_MAX: u64 = i64::MAX as u64;

/// The first byte picks a currency, the rest is the text. `Money::parse` accepts exactly
/// the decimals worked out another way, with the value they stand for; what it accepts
/// prints back to itself; any amount the books hold prints to a string that parses back to
/// it; errors name the text as given; currency codes are exactly the known ones.
pub fn money(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let currency = Currency::all()[usize::from(selector) % Currency::all().len()];
    let text = String::from_utf8_lossy(rest);
    let parsed = Money::parse(&text, currency);
    let expected = minor_units(&text, usize::from(currency.exponent()));
    assert_eq!(
        parsed.as_ref().ok().map(|m| m.amount_minor),
        expected,
        "{text:?} in {currency}: {parsed:?}"
    );
    match &parsed {
        Ok(money) => {
            assert_eq!(money.currency, currency);
            assert_round_trip(*money);
        }
        Err(error) => {
            let named = match error {
                MoneyError::Malformed(given) | MoneyError::TooLarge(given) => given,
                MoneyError::TooPrecise { amount, .. } => amount,
                MoneyError::UnknownCurrency(code) => panic!("{text:?}: unknown currency {code}"),
            };
            assert_eq!(named, &text, "the error names the text as given");
            // The API's error map takes every error.
            let _ = money_error(error.clone(), "amount");
        }
    }

    // Any amount the books hold: the bytes read as a number, in this currency.
    let mut bytes = [0u8; 8];
    for (slot, byte) in bytes.iter_mut().zip(rest) {
        *slot = *byte;
    }
    let amount = u64::from_le_bytes(bytes) & AMOUNT_MINOR_MAX;
    assert_round_trip(Money::new(amount, currency));

    // Currency codes: exactly the known ones, by their exact code.
    match text.parse::<Currency>() {
        Ok(found) => {
            assert_eq!(found.code(), text);
            assert_eq!(Currency::from_ledger(found.ledger()), Some(found));
        }
        Err(error) => {
            assert!(Currency::all().iter().all(|c| c.code() != text));
            assert_eq!(error, MoneyError::UnknownCurrency(text.to_string()));
        }
    }

    // Money in JSON, as request bodies carry it.
    if let Ok(money) = serde_json::from_slice::<Money>(rest) {
        let json = serde_json::to_string(&money).expect("money serializes");
        assert_eq!(serde_json::from_str::<Money>(&json).ok(), Some(money));
    }

    // A fund's daily income per 10,000 units: what parses prints back to itself.
    if let Ok(income) = Income::parse(&text) {
        assert!(income <= Income::MAX, "{text:?}");
        assert_eq!(Income::parse(&income.to_string()), Ok(income), "{text:?}");
    }
}

/// `money` printed as a decimal has exactly the currency's decimals and parses back to it,
/// also in JSON.
fn assert_round_trip(money: Money) {
    let decimal = money.decimal();
    let decimals = decimal.split_once('.').map_or(0, |(_, f)| f.len());
    assert_eq!(
        decimals,
        usize::from(money.currency.exponent()),
        "{decimal}"
    );
    assert_eq!(
        Money::parse(&decimal, money.currency),
        Ok(money),
        "{decimal}"
    );
    assert_eq!(
        money.to_string(),
        format!("{}{decimal}", money.currency.symbol())
    );
    let json = serde_json::to_string(&money).expect("money serializes");
    assert_eq!(
        serde_json::from_str::<Money>(&json).ok(),
        Some(money),
        "{json}"
    );
}

/// The minor units a decimal string stands for, or `None` if it is not an amount of a
/// currency with `exponent` decimals: worked out by moving the point within the string and
/// reading one integer, not digit by digit as `Money::parse` does.
fn minor_units(text: &str, exponent: usize) -> Option<u64> {
    if text.len() > DECIMAL_LEN_MAX {
        return None;
    }
    let (whole, fraction) = match text.find('.') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > exponent {
        return None;
    }
    // At most 24 digits plus 3 of padding: far inside u128.
    let shifted: u128 = format!("{whole}{fraction:0<exponent$}").parse().ok()?;
    u64::try_from(shifted)
        .ok()
        .filter(|minor| *minor <= AMOUNT_MINOR_MAX)
}
