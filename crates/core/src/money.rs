//! Money: integer minor units of an ISO 4217 currency. Decimal strings ("88.88") exist only at
//! the edge and are parsed exactly: a string with more decimals than the currency has is
//! refused, never rounded ("1.005" is not an amount of CNY).

use std::fmt;
use std::str::FromStr;

/// A currency Formica keeps books in: its ISO 4217 code, numeric code (also its ledger id)
/// and exponent (digits after the decimal point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    numeric: u16,
    exponent: u8,
    symbol: &'static str,
}

/// The currencies Formica knows, by ISO 4217 code. Adding one is adding a line here.
const CURRENCIES: &[Currency] = &[
    Currency::new("CNY", 156, 2, "¥"),
    Currency::new("HKD", 344, 2, "HK$"),
    Currency::new("USD", 840, 2, "$"),
    Currency::new("EUR", 978, 2, "€"),
    Currency::new("GBP", 826, 2, "£"),
    Currency::new("JPY", 392, 0, "¥"),
    Currency::new("KRW", 410, 0, "₩"),
    Currency::new("SGD", 702, 2, "S$"),
    Currency::new("THB", 764, 2, "฿"),
    Currency::new("KWD", 414, 3, "KD"),
];

impl Currency {
    const fn new(code: &'static str, numeric: u16, exponent: u8, symbol: &'static str) -> Self {
        Currency {
            code,
            numeric,
            exponent,
            symbol,
        }
    }

    /// Chinese yuan renminbi.
    pub const CNY: Currency = CURRENCIES[0];

    /// Every currency Formica knows.
    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }

    /// The currency with this ISO 4217 alphabetic code (upper case).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    /// The currency whose books are the ledger with this id (its ISO 4217 numeric code).
    pub fn from_ledger(ledger: u32) -> Option<Currency> {
        CURRENCIES
            .iter()
            .copied()
            .find(|c| u32::from(c.numeric) == ledger)
    }

    /// The ISO 4217 alphabetic code.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// The ledger that keeps this currency's books: its ISO 4217 numeric code.
    pub fn ledger(self) -> u32 {
        u32::from(self.numeric)
    }

    /// Digits after the decimal point.
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// The sign shown before amounts.
    pub fn symbol(self) -> &'static str {
        self.symbol
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::from_code(code).ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }
}

/// An amount of money: minor units (fen, cents) of a currency. Never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units.
    pub amount_minor: u64,
    /// The currency.
    pub currency: Currency,
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(CURRENCIES.iter().map(|c| c.code)))
            .description(Some("An ISO 4217 currency code."))
            .into()
    }
}

impl utoipa::ToSchema for Currency {}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Type;
        utoipa::openapi::ObjectBuilder::new()
            .property(
                "amount",
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+(\\.[0-9]+)?$"))
                    .description(Some(
                        "A decimal amount with at most the currency's decimals, e.g. \"88.88\".",
                    )),
            )
            .required("amount")
            .property("currency", <Currency as utoipa::PartialSchema>::schema())
            .required("currency")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ))
            .description(Some("An amount of money, exact: never a float."))
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// Money in JSON: `{"amount": "88.88", "currency": "CNY"}`, the amount a decimal string with
/// exactly the currency's decimals, so no reader goes through a float.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    amount: String,
    currency: Currency,
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MoneyJson {
            amount: self.decimal(),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = MoneyJson::deserialize(deserializer)?;
        Money::parse(&json.amount, json.currency).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not an amount of money.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not an ISO 4217 code Formica knows.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// Empty, signed, or not digits with at most one decimal point.
    #[error("{0:?} is not a decimal amount like 88.88")]
    Malformed(String),
    /// More decimals than the currency has (the currency's exponent).
    #[error("{amount:?} has more than {exponent} decimals for {currency}")]
    TooPrecise {
        /// The string given.
        amount: String,
        /// The currency.
        currency: Currency,
        /// Its exponent.
        exponent: u8,
    },
    /// Larger than the books can hold.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// The largest amount in minor units (what the store's signed 64-bit columns hold).
const AMOUNT_MINOR_MAX: u64 = i64::MAX as u64;

/// The longest decimal string accepted: digits of `AMOUNT_MINOR_MAX` plus a point.
const DECIMAL_LEN_MAX: usize = 24;

impl Money {
    /// `amount_minor` minor units of `currency`.
    pub fn new(amount_minor: u64, currency: Currency) -> Self {
        Money {
            amount_minor,
            currency,
        }
    }

    /// Parses a decimal string such as "88.88" exactly in `currency`'s minor units. Refuses
    /// signs, exponents, spaces, more decimals than the currency has, and amounts beyond
    /// what the books hold; "0" and "0.00" are zero (callers that need a positive amount check).
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let malformed = || MoneyError::Malformed(amount.to_owned());
        if amount.is_empty() || amount.len() > DECIMAL_LEN_MAX {
            return Err(if amount.is_empty() {
                malformed()
            } else {
                MoneyError::TooLarge(amount.to_owned())
            });
        }
        let (whole, fraction) = match amount.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (amount, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(malformed());
        }
        let fraction = fraction.unwrap_or("");
        let exponent = usize::from(currency.exponent);
        if fraction.len() > exponent {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_owned(),
                currency,
                exponent: currency.exponent,
            });
        }
        let too_large = || MoneyError::TooLarge(amount.to_owned());
        let mut minor: u64 = 0;
        let padded = fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(exponent);
        for digit in whole.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        if minor > AMOUNT_MINOR_MAX {
            return Err(too_large());
        }
        Ok(Money::new(minor, currency))
    }

    /// The amount as a decimal string with exactly the currency's decimals ("88.80").
    pub fn decimal(&self) -> String {
        let exponent = u32::from(self.currency.exponent);
        if exponent == 0 {
            return self.amount_minor.to_string();
        }
        let unit = 10u64.pow(exponent);
        format!(
            "{}.{:0width$}",
            self.amount_minor / unit,
            self.amount_minor % unit,
            width = exponent as usize
        )
    }
}

impl fmt::Display for Money {
    /// "¥88.88": the symbol and the exact decimal amount.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.currency.symbol, self.decimal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(amount: &str) -> Result<Money, MoneyError> {
        Money::parse(amount, Currency::CNY)
    }

    #[test]
    fn decimal_strings_parse_exactly_into_minor_units() {
        let rows: &[(&str, u64)] = &[
            ("88.88", 8888),
            ("88.8", 8880),
            ("88", 8800),
            ("0", 0),
            ("0.01", 1),
            ("007.50", 750),
            ("92233720368547758.07", 9_223_372_036_854_775_807),
        ];
        for (text, minor) in rows {
            assert_eq!(cny(text).map(|m| m.amount_minor), Ok(*minor), "{text}");
        }
    }

    #[test]
    fn bad_amounts_are_refused_with_their_reason() {
        let malformed = [
            "", "-1", "+1", "1e3", " 1", "1 ", "1.", ".5", "1.2.3", "1,00", "¥1", "NaN",
        ];
        for text in malformed {
            assert_eq!(
                cny(text),
                Err(MoneyError::Malformed(text.to_owned())),
                "{text:?}"
            );
        }
        assert!(matches!(cny("1.005"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(
            Money::parse("1.5", Currency::from_code("JPY").expect("known")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            cny("92233720368547758.08"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            cny("99999999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            cny(&"9".repeat(100)),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn amounts_print_with_the_currency_decimals_and_symbol() {
        let money = cny("88.8").expect("valid");
        assert_eq!(money.decimal(), "88.80");
        assert_eq!(money.to_string(), "¥88.80");
        let yen = Money::parse("1500", Currency::from_code("JPY").expect("known")).expect("valid");
        assert_eq!(yen.decimal(), "1500");
        let dinar =
            Money::parse("1.005", Currency::from_code("KWD").expect("known")).expect("valid");
        assert_eq!(dinar.decimal(), "1.005");
        assert_eq!(Money::new(5, Currency::CNY).decimal(), "0.05");
    }

    #[test]
    fn a_currency_is_its_ledger() {
        assert_eq!(Currency::CNY.ledger(), 156);
        assert_eq!(Currency::from_ledger(840).map(Currency::code), Some("USD"));
        assert_eq!("EUR".parse::<Currency>().map(Currency::ledger), Ok(978));
        assert_eq!(
            "XXX".parse::<Currency>(),
            Err(MoneyError::UnknownCurrency("XXX".into()))
        );
    }
}
