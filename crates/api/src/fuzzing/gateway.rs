//! The open gateway's hostile input: request forms, the string-to-sign, RSA signatures in
//! base64, the timestamp and the `biz_content` fields a trade is made of; and the public keys
//! merchants upload.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use formica_core::{Currency, Money, Settings};
use rsa::traits::PublicKeyParts;

use super::{app_keys, key, platform};
use crate::gateway::sign::{self, SignType};
use crate::gateway::{GatewayStats, Request, check, methods, parse_params, time};

/// The gateway's clock in these targets: 2026-12-02 00:00:00 UTC. Seeds are stamped within a
/// day of it, so that they pass the timestamp check.
pub const NOW_SECONDS: i64 = 1_796_169_600;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The longest a gateway trade may wait for payment (§8.1: 15 days).
const PAY_WINDOW_NS: u64 = 15 * 24 * 3600 * NANOS_PER_SECOND;

/// The input is a form body as a client POSTs it. The gateway decodes exactly the pairs of
/// the form, refusing only a name given twice; the string-to-sign is the kept pairs sorted
/// by name; a signature the checks accept is the one signature of that string under the
/// app's key, so no change to a parameter or the signature is accepted; a form without
/// `sign` is signed here as the SDKs sign, and then passes the signature check, so the
/// checks after it (timestamp, method, `biz_content`, a trade's fields) see fuzzed forms too.
pub fn gateway_request(data: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    content_to_sign_is_the_kept_pairs_sorted(&pairs);
    let mut params = match parse_params(None, Some(data)) {
        Ok(params) => params,
        Err(error) => {
            let names: std::collections::BTreeSet<&str> =
                pairs.iter().map(|(n, _)| n.as_str()).collect();
            assert!(
                names.len() < pairs.len(),
                "a form without a repeated name was refused: {error:?}"
            );
            return;
        }
    };
    assert_eq!(params.len(), pairs.len());
    for (name, value) in &pairs {
        assert_eq!(params.get(name), Some(value), "{name}");
    }
    assert_eq!(
        parse_params(None, Some(encode(&params).as_bytes())).as_ref(),
        Ok(&params),
        "the decoded form encodes back to itself"
    );
    if let Some(timestamp) = params.get("timestamp") {
        times_print_back(timestamp);
    }

    let signed_here = !params.contains_key("sign");
    if signed_here {
        let sign_type = params
            .get("sign_type")
            .and_then(|t| SignType::parse(t))
            .unwrap_or(SignType::Rsa2);
        let content = sign::content_to_sign(pairs_of(&params), &["sign"]);
        params.insert(
            "sign".to_owned(),
            platform().sign(sign_type, content.as_bytes()),
        );
    }
    let checked = check(
        params.clone(),
        Some(app_keys()),
        NOW_SECONDS,
        &GatewayStats::default(),
        "http://localhost",
    );
    match checked {
        Err(error) if error.sub_code == "isv.invalid-signature" => {
            assert!(!signed_here, "a form signed as the SDKs sign was refused");
        }
        Err(_) => {}
        Ok(request) => accepted(&request, data),
    }
}

/// What holds of a request the checks accepted.
fn accepted(request: &Request, data: &[u8]) {
    let sign_type = SignType::parse(request.param("sign_type").unwrap_or_default())
        .expect("an accepted request names a known sign_type");
    let content = sign::content_to_sign(pairs_of(&request.params), &["sign"]);
    let signature = request
        .param("sign")
        .expect("an accepted request is signed");
    // PKCS#1 v1.5 signatures are deterministic: the accepted one is the one there is.
    assert_eq!(
        STANDARD.decode(signature.trim()).ok(),
        STANDARD
            .decode(platform().sign(sign_type, content.as_bytes()))
            .ok(),
        "a signature other than the key's own was accepted"
    );
    let public = key().to_public_key();
    assert!(sign::verify(
        &public,
        sign_type,
        content.as_bytes(),
        signature
    ));
    // Any change to a signed parameter, or to the signature, is refused. What is signed is
    // what the string-to-sign keeps: not `sign`, no empty value and no empty name (a pair
    // without a name is nobody's parameter; the gateway never reads it).
    let signed: Vec<&String> = request
        .params
        .iter()
        .filter(|(name, value)| !name.is_empty() && name.as_str() != "sign" && !value.is_empty())
        .map(|(name, _)| name)
        .collect();
    let victim = signed[data.len() % signed.len()];
    let mut tampered = request.params.clone();
    tampered
        .get_mut(victim)
        .expect("the victim is a parameter")
        .push('0');
    let tampered_content = sign::content_to_sign(pairs_of(&tampered), &["sign"]);
    assert!(
        !sign::verify(&public, sign_type, tampered_content.as_bytes(), signature),
        "{victim} was changed and the signature still verified"
    );
    let mut bytes = STANDARD
        .decode(signature.trim())
        .expect("an accepted signature is base64");
    let at = data.len() % bytes.len();
    bytes[at] ^= 1 << (data.len() % 8);
    assert!(!sign::verify(
        &public,
        sign_type,
        content.as_bytes(),
        &STANDARD.encode(&bytes)
    ));
    let other = match sign_type {
        SignType::Rsa2 => SignType::Rsa,
        SignType::Rsa => SignType::Rsa2,
    };
    assert!(!sign::verify(&public, other, content.as_bytes(), signature));

    // The fields a trade is made of (§8.3) take any `biz_content` without panicking, and
    // what they accept is in range.
    let _ = methods::required_number(request, "out_trade_no");
    let _ = methods::subject(request);
    if let Ok(amount) = methods::amount(request, "total_amount", Currency::CNY) {
        assert!((1..=100_000_000 * 100).contains(&amount.amount_minor));
        assert_eq!(Money::parse(&amount.decimal(), Currency::CNY), Ok(amount));
    }
    let now = u64::try_from(NOW_SECONDS).expect("after 1970") * NANOS_PER_SECOND;
    if let Ok(pay_by) = methods::pay_by(now, &Settings::default(), request, PAY_WINDOW_NS) {
        assert!(pay_by > now && pay_by <= now + PAY_WINDOW_NS, "{pay_by}");
    }
    if let Some(serde_json::Value::String(expire)) = request.biz.get("time_expire") {
        times_print_back(expire);
    }
}

/// `content_to_sign` is the pairs with a name and a value, less `exclude`, sorted by name
/// (pairs of one name in the order given), as `name=value` joined with `&`; built here
/// another way, by grouping.
fn content_to_sign_is_the_kept_pairs_sorted(pairs: &[(String, String)]) {
    for exclude in [&["sign"][..], &["sign", "sign_type"]] {
        let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, value) in pairs {
            if !name.is_empty() && !value.is_empty() && !exclude.contains(&name.as_str()) {
                grouped.entry(name).or_default().push(value);
            }
        }
        let expected: Vec<String> = grouped
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |value| format!("{name}={value}")))
            .collect();
        let content =
            sign::content_to_sign(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), exclude);
        assert_eq!(content, expected.join("&"));
    }
}

/// A `yyyy-MM-dd HH:mm:ss` time that parses prints back to the same text.
fn times_print_back(text: &str) {
    if let Some(seconds) = time::parse(text) {
        let (day, _) = text.split_once(' ').expect("a parsed time has a space");
        let days = time::parse_day(day).expect("a parsed time has a day");
        assert_eq!(time::format_day(days), day);
        if let Ok(seconds) = u64::try_from(seconds)
            && let Some(nanos) = seconds.checked_mul(NANOS_PER_SECOND)
        {
            assert_eq!(time::format(nanos, 0), text);
        }
    }
}

fn pairs_of(params: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

fn encode(params: &BTreeMap<String, String>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The input is a public key as a merchant uploads it (PEM or bare base64, any form). It is
/// read or refused without panicking; a key read has at least 2048 bits, prints in both
/// forms the platform shows to text that reads back to it, and verifies a signature made
/// with another key only if it is that key.
pub fn gateway_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(public) = sign::parse_public_key(&text) else {
        return;
    };
    assert!(public.n().bits() >= sign::KEY_BITS_MIN);
    for form in [
        sign::public_key_base64(&public),
        sign::public_key_pem(&public),
    ] {
        assert_eq!(sign::parse_public_key(&form).ok().as_ref(), Some(&public));
    }
    let signature = platform().sign(SignType::Rsa2, data);
    assert_eq!(
        sign::verify(&public, SignType::Rsa2, data, &signature),
        public == key().to_public_key()
    );
}
