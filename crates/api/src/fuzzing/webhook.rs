//! Webhook deliveries: the body the worker POSTs and its `Formica-Signature` header.

use formica_core::Id;
use formica_engine::webhooks;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The input is lines: the endpoint's secret, the Unix time of the attempt, the topic, and
/// the message (JSON, or any text, which the outbox would hold as a JSON string). The body is
/// JSON with exactly the delivery's id, topic, time and message; the header is
/// `t=<time>,v1=<64 hex digits>`; a receiver that recomputes HMAC-SHA256 over `<t>.<body>`
/// with the secret accepts it, and refuses it for a changed body, time or secret.
pub fn webhook(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let secret = lines.next().unwrap_or_default();
    let seconds: u64 = lines.next().unwrap_or_default().parse().unwrap_or(0);
    let topic = lines.next().unwrap_or_default();
    let message = lines.next().unwrap_or_default();
    let data_value = serde_json::from_str::<Value>(message)
        .unwrap_or_else(|_| Value::String(message.to_owned()));
    let payload = data_value.to_string();
    let id = Id(seconds.rotate_left(17));
    let created_at = seconds.wrapping_mul(1_000_000_000);

    let body = webhooks::body(id, topic, created_at, &payload);
    let parsed: Value = serde_json::from_str(&body).expect("the body is JSON");
    let members = parsed.as_object().expect("the body is an object");
    assert_eq!(members.len(), 4, "{body}");
    assert_eq!(members["id"], id.to_string());
    assert_eq!(members["topic"], topic);
    assert_eq!(members["created_at"], created_at);
    // The message is spliced in as the outbox holds it, byte for byte (compared as text:
    // serde_json's float parsing does not promise a float prints and parses back).
    assert!(body.ends_with(&format!(",\"data\":{payload}}}")), "{body}");
    assert_eq!(
        Some(&members["data"]),
        serde_json::from_str::<Value>(&payload).ok().as_ref()
    );

    let header = webhooks::signature(secret, seconds, &body);
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("the header is t=<time>,v1=<hex>");
    assert_eq!(t, seconds.to_string());
    assert_eq!(v1.len(), 64);
    assert!(
        v1.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert!(receiver_accepts(secret, &header, &body));
    assert!(!receiver_accepts(secret, &header, &format!("{body} ")));
    assert!(!receiver_accepts(&format!("{secret}x"), &header, &body));
    let later = webhooks::signature(secret, seconds.wrapping_add(1), &body);
    let replayed = format!(
        "t={},{}",
        seconds.wrapping_add(1),
        &header[header.len() - 67..]
    );
    assert!(!receiver_accepts(secret, &replayed, &body));
    assert_ne!(later, replayed);
}

/// What a receiver does with the header (as the API docs describe): recompute the MAC over
/// `<t>.<body>` and compare in constant time.
fn receiver_accepts(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&expected).is_ok()
}
