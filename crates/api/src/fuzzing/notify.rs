//! What the gateway writes for merchants to verify: the signed notification form (§6) and
//! the signed answer envelope (§4), over trades with any field values.

use std::collections::{BTreeMap, BTreeSet};

use formica_core::Outcome;
use serde_json::Value;

use super::{APP_ID, key, platform, python_sdk_signed_text};
use crate::gateway::sign::{self, SignType};
use crate::gateway::{methods, notify, parse_params};

/// The platform's time zone in these targets: UTC+8, as in production.
const OFFSET_SECONDS: i64 = 8 * 3600;

/// The input is an outbox payload (`Outcome` JSON) as the notify worker reads it; a trade in
/// it is notified. The form has no empty value and no name twice; what the merchant decodes
/// from the body is exactly the signed parameters; the signature verifies as the SDKs check
/// it (all but `sign` and `sign_type`, sorted) and no longer does once a field is changed or
/// dropped. The trade's answer envelope is valid JSON holding exactly the object and a
/// signature over its exact text, which the SDKs' ways of cutting that text out find.
pub fn notify(data: &[u8]) {
    let Ok(Outcome::Trade(trade)) = serde_json::from_slice::<Outcome>(data) else {
        return;
    };
    let sign_type = if data.len().is_multiple_of(2) {
        SignType::Rsa2
    } else {
        SignType::Rsa
    };
    // A login as sign-up keeps it, masked as merchants see it.
    let login = trade
        .tracking
        .as_deref()
        .and_then(|text| crate::normalize_login(text).ok());
    let masked = login.as_deref().map(methods::mask_login);
    if let (Some(login), Some(masked)) = (&login, &masked) {
        assert_ne!(login, masked, "a login is shown masked");
        assert!(masked.contains("***"), "{masked}");
    }
    let app_id = trade.app_id.as_deref().unwrap_or(APP_ID);
    let params = notify::params(
        &trade,
        app_id,
        "fuzz-notify-id",
        masked.clone(),
        trade.updated_at,
        OFFSET_SECONDS,
    );
    let names: BTreeSet<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), params.len(), "a name is given twice");
    assert!(params.iter().all(|(_, v)| !v.is_empty()), "an empty value");

    let form = notify::signed(params, platform(), sign_type);
    let body = notify::form_body(&form);
    let received = parse_params(None, Some(body.as_bytes())).expect("no name is sent twice");
    let sent: BTreeMap<String, String> = form.iter().cloned().collect();
    assert_eq!(received, sent, "the merchant decodes what was signed");
    let public = key().to_public_key();
    let content = |params: &BTreeMap<String, String>| {
        sign::content_to_sign(
            params.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &["sign", "sign_type"],
        )
    };
    let signature = &received["sign"];
    assert!(sign::verify(
        &public,
        sign_type,
        content(&received).as_bytes(),
        signature
    ));
    let signed: Vec<&String> = received
        .keys()
        .filter(|n| !matches!(n.as_str(), "sign" | "sign_type"))
        .collect();
    let victim = signed[data.len() % signed.len()].clone();
    let mut changed = received.clone();
    changed
        .get_mut(&victim)
        .expect("the victim is sent")
        .push('0');
    assert!(
        !sign::verify(&public, sign_type, content(&changed).as_bytes(), signature),
        "{victim} was changed and the notification still verified"
    );
    changed.remove(&victim);
    assert!(
        !sign::verify(&public, sign_type, content(&changed).as_bytes(), signature),
        "{victim} was dropped and the notification still verified"
    );

    // The answer to a query about this trade, under a method name the trade's close reason
    // supplies (any text: the gateway echoes the request's method).
    let object = Value::Object(methods::trade_fields(
        &trade,
        masked.as_deref(),
        OFFSET_SECONDS,
    ));
    envelope_holds(Some("alipay.trade.query"), &object, sign_type);
    envelope_holds(trade.close_reason.as_deref(), &object, sign_type);
    let whole = serde_json::to_value(&trade).expect("a trade serializes");
    envelope_holds(None, &whole, sign_type);
}

/// `envelope`'s promises (§4.2) for one answer.
fn envelope_holds(method: Option<&str>, object: &Value, sign_type: SignType) {
    let body = sign::envelope(method, object, Some((platform(), sign_type)));
    let key_name = match method {
        Some(method) => format!("{}_response", method.replace('.', "_")),
        None => "error_response".to_owned(),
    };
    let parsed: Value = serde_json::from_str(&body).expect("the envelope is JSON");
    let members = parsed.as_object().expect("the envelope is an object");
    assert_eq!(members.len(), 2, "{body}");
    assert_eq!(members.get(&key_name), Some(object));
    let signature = members["sign"].as_str().expect("the sign is a string");
    let signed = sign::response_json(object);
    let quoted_key = Value::String(key_name.clone()).to_string();
    assert_eq!(
        body,
        format!("{{{quoted_key}:{signed},\"sign\":\"{signature}\"}}")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&signed).ok().as_ref(),
        Some(object)
    );
    assert!(sign::verify(
        &key().to_public_key(),
        sign_type,
        signed.as_bytes(),
        signature
    ));
    // The SDKs search for the key as the method names it; that is the key in the body when
    // JSON needs no escape in it, as with every real method name.
    if quoted_key == format!("\"{key_name}\"") && object.is_object() {
        assert_eq!(
            python_sdk_signed_text(&body, &key_name),
            Some(signed.as_str()),
            "python-alipay-sdk would verify another text"
        );
        let java_start = 2 + key_name.len() + 2;
        assert_eq!(
            body.get(java_start..java_start + signed.len()),
            Some(signed.as_str())
        );
    }
}
