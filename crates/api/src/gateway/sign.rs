//! RSA signing for the Alipay-compatible open gateway (`/gateway.do`).
//!
//! Requests are verified over a canonical string-to-sign built from their parameters (§2 of
//! `alipay-gateway.md`); responses, notifications and return parameters are signed with the
//! platform key (§4, §6.4). Signatures are RSASSA-PKCS1-v1_5 with SHA-256 (`RSA2`) or SHA-1
//! (`RSA`), in standard padded base64. Keys come in the formats the SDKs and Alipay's own key
//! tool produce (§3): PEM or bare base64, SPKI/PKCS#1 for public keys, PKCS#8/PKCS#1 for
//! private keys.
//!
//! The response body is written by hand ([`envelope`]) rather than by serialising a map,
//! because every SDK cuts the signed text out of the raw body with string searches and each
//! one searches differently; only one exact byte layout satisfies them all (§4.2).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use sha1::Sha1;
use sha2::Sha256;

pub use rsa::{RsaPrivateKey, RsaPublicKey};

/// The signature algorithm a request names in `sign_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignType {
    /// `RSA2`: SHA256withRSA, what every current SDK uses by default.
    Rsa2,
    /// `RSA`: SHA1withRSA, the legacy type some old integrations still send.
    Rsa,
}

impl SignType {
    /// The type named by a `sign_type` value. Exact, case-sensitive match: the SDKs send
    /// these spellings, and accepting others would let two spellings mean one thing.
    pub fn parse(s: &str) -> Option<SignType> {
        match s {
            "RSA2" => Some(SignType::Rsa2),
            "RSA" => Some(SignType::Rsa),
            _ => None,
        }
    }

    /// The `sign_type` value naming this type.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Rsa2 => "RSA2",
            SignType::Rsa => "RSA",
        }
    }
}

/// Why a key text was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not an RSA key of the expected kind; the reason is meant for the person
    /// who supplied it.
    #[error("not a usable RSA key: {0}")]
    NotAKey(String),
    /// The key is an RSA key, but its modulus is shorter than [`KEY_BITS_MIN`].
    #[error("RSA key has {bits} bits; at least {KEY_BITS_MIN} are required")]
    TooShort {
        /// The modulus length found.
        bits: usize,
    },
}

/// The shortest modulus accepted: 1024-bit RSA is breakable, and Alipay itself issues 2048.
pub const KEY_BITS_MIN: usize = 2048;

/// Key text decoding: standard alphabet, padding optional, because keys pasted from
/// consoles and config files sometimes lose their trailing `=`.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses a public key: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`), as PEM or
/// as bare base64 (whitespace and newlines ignored). The form is detected by parsing the DER,
/// not from the PEM label or a prefix, so a mislabelled PEM still works. Keys shorter than
/// [`KEY_BITS_MIN`] are refused.
pub fn parse_public_key(text: &str) -> Result<RsaPublicKey, KeyError> {
    let der = der_from_text(text)?;
    let key = match RsaPublicKey::from_public_key_der(&der) {
        Ok(key) => key,
        Err(_) => match RsaPublicKey::from_pkcs1_der(&der) {
            Ok(key) => key,
            // A private key pasted into the public key field is the commonest mistake;
            // say so instead of a generic parse failure.
            Err(_) if is_private_key_der(&der) => {
                return Err(KeyError::NotAKey(
                    "this is a private key; give the public key".into(),
                ));
            }
            Err(_) => {
                return Err(KeyError::NotAKey(
                    "not an RSA public key in SubjectPublicKeyInfo or PKCS#1 form".into(),
                ));
            }
        },
    };
    check_bits(key.n().bits())?;
    Ok(key)
}

/// Parses a private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), as
/// PEM or as bare base64 of either DER, detected by parsing. Encrypted keys are not supported.
/// Keys shorter than [`KEY_BITS_MIN`] are refused, like public keys, since this one signs
/// everything merchants trust.
pub fn parse_private_key(text: &str) -> Result<RsaPrivateKey, KeyError> {
    let der = der_from_text(text)?;
    let key = match RsaPrivateKey::from_pkcs8_der(&der) {
        Ok(key) => key,
        Err(_) => RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| {
            KeyError::NotAKey("not an RSA private key in PKCS#8 or PKCS#1 form".into())
        })?,
    };
    check_bits(key.n().bits())?;
    Ok(key)
}

/// Generates a new 2048-bit key pair from the OS random source. Slow (up to seconds
/// unoptimised): call it once per key, never per request.
pub fn generate_key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS_MIN)
        .expect("the OS random source works and 2048 is a valid RSA size")
}

/// The public key as bare base64 of its SPKI DER, on one line: what Alipay's console shows
/// and what every SDK accepts (§3.3).
pub fn public_key_base64(key: &RsaPublicKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("encoding an RSA public key to DER cannot fail");
    STANDARD.encode(der.as_bytes())
}

/// The public key as SPKI PEM (`BEGIN PUBLIC KEY`) with LF line endings.
pub fn public_key_pem(key: &RsaPublicKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("encoding an RSA public key to PEM cannot fail")
}

/// The private key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`) with LF line endings: the form the
/// non-Java SDKs want for the app key.
pub fn private_key_pkcs1_pem(key: &RsaPrivateKey) -> String {
    key.to_pkcs1_pem(LineEnding::LF)
        .expect("encoding an RSA private key to PEM cannot fail")
        .to_string()
}

/// The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`) with LF line endings: the form Java's
/// SDK wants (as bare base64 between the markers).
pub fn private_key_pkcs8_pem(key: &RsaPrivateKey) -> String {
    key.to_pkcs8_pem(LineEnding::LF)
        .expect("encoding an RSA private key to PEM cannot fail")
        .to_string()
}

/// The string-to-sign (§2.2, §6.4): every parameter except the names in `exclude`, dropping
/// empty values (and empty names, as Java's SDK does), sorted by name bytes, rendered as
/// `name=value` with raw values (no encoding, no trimming), joined with `&`.
///
/// Requests exclude `sign`; notifications and return parameters exclude `sign` and
/// `sign_type`. Duplicate names are kept in input order; the gateway rejects duplicates
/// before it gets here (§2.4).
pub fn content_to_sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    exclude: &[&str],
) -> String {
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(name, value)| !name.is_empty() && !value.is_empty() && !exclude.contains(name))
        .collect();
    // Stable sort on the name alone: `str` order is byte order, as the SDKs sort.
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(kept.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (i, (name, value)) in kept.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Signs `content` with PKCS#1 v1.5 and the hash of `sign_type`; standard padded base64.
pub fn sign(key: &RsaPrivateKey, sign_type: SignType, content: &[u8]) -> String {
    // Randomised signing only adds RSA blinding (PKCS#1 v1.5 output is deterministic
    // anyway); blinding keeps the private-key operation's timing independent of the key.
    let mut rng = rand_core::OsRng;
    let bytes = match sign_type {
        SignType::Rsa2 => SigningKey::<Sha256>::new(key.clone())
            .sign_with_rng(&mut rng, content)
            .to_bytes(),
        SignType::Rsa => SigningKey::<Sha1>::new(key.clone())
            .sign_with_rng(&mut rng, content)
            .to_bytes(),
    };
    STANDARD.encode(bytes)
}

/// The platform's private key, ready to sign fast. The platform signs every answer,
/// notification and return, so this is the gateway's hottest path: RSA2 goes through `ring`
/// (constant-time, assembly-optimised, several times faster than the pure-Rust `rsa`
/// crate); legacy RSA (SHA-1), which `ring` does not sign, through `rsa`.
#[derive(Debug)]
pub struct PlatformKey {
    rsa: RsaPrivateKey,
    ring: ring::rsa::KeyPair,
}

impl PlatformKey {
    /// The key, prepared for both hashes.
    pub fn new(key: &RsaPrivateKey) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs1_der()
            .map_err(|e| KeyError::NotAKey(e.to_string()))?;
        let ring = ring::rsa::KeyPair::from_der(der.as_bytes())
            .map_err(|e| KeyError::NotAKey(e.to_string()))?;
        Ok(PlatformKey {
            rsa: key.clone(),
            ring,
        })
    }

    /// The public half.
    pub fn public_key(&self) -> RsaPublicKey {
        self.rsa.to_public_key()
    }

    /// Like [`sign`], with the same output.
    pub fn sign(&self, sign_type: SignType, content: &[u8]) -> String {
        match sign_type {
            SignType::Rsa => sign(&self.rsa, sign_type, content),
            SignType::Rsa2 => {
                let mut signature = vec![0; self.ring.public().modulus_len()];
                self.ring
                    .sign(
                        &ring::signature::RSA_PKCS1_SHA256,
                        &ring::rand::SystemRandom::new(),
                        content,
                        &mut signature,
                    )
                    .expect("a valid key signs any message");
                STANDARD.encode(signature)
            }
        }
    }
}

/// Whether `signature` (standard base64, surrounding whitespace tolerated) is a valid
/// signature of `content` under `key` with the hash of `sign_type`. False on any malformed
/// input, never an error: to the caller every failure means the same thing.
pub fn verify(key: &RsaPublicKey, sign_type: SignType, content: &[u8], signature: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    match sign_type {
        SignType::Rsa2 => VerifyingKey::<Sha256>::new(key.clone())
            .verify(content, &signature)
            .is_ok(),
        SignType::Rsa => VerifyingKey::<Sha1>::new(key.clone())
            .verify(content, &signature)
            .is_ok(),
    }
}

/// The JSON text of a response object as the gateway writes it: compact, like
/// `serde_json::to_string`, but with `{` and `}` inside strings (values and names) written as
/// `\u007b` and `\u007d`. python-alipay-sdk finds the signed text by counting braces without
/// knowing about strings (§4.2 rule 6), so an unbalanced brace in, say, an echoed `subject`
/// would otherwise break its verification. The result is still valid JSON and parses back to
/// the same value.
pub fn response_json(object: &serde_json::Value) -> String {
    // `Display` on a `Value` is the compact serialisation and cannot fail.
    let compact = object.to_string();
    let mut out = String::with_capacity(compact.len());
    let mut in_string = false;
    let mut escaped = false;
    // Valid JSON has `"` only as string delimiters or escaped as `\"`, so tracking backslash
    // escapes is enough to know whether a brace is structural. Every character after a
    // backslash is ASCII (`"\/bfnrtu`), and hex digits of `\uXXXX` are never braces.
    for c in compact.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else {
                match c {
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    '{' => {
                        out.push_str("\\u007b");
                        continue;
                    }
                    '}' => {
                        out.push_str("\\u007d");
                        continue;
                    }
                    _ => {}
                }
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

/// The whole synchronous response body (§4.1, §4.2): exactly
/// `{"<key>":<object>,"sign":"<base64>"}` with no whitespace, where `<key>` is `method` with
/// every `.` replaced by `_` plus `_response` (`error_response` when there is no method),
/// `<object>` is [`response_json`] of `object`, and the signature is over the UTF-8 bytes of
/// that object text, byte for byte as spliced in. Without a `signer` the body is
/// `{"<key>":<object>}`.
///
/// `object` should be a JSON object: the SDKs look for a `{` after the key. `method` comes
/// from the request and is JSON-escaped, so the body is valid JSON whatever it holds; the
/// gateway should still key by the method string as received (§4.3).
pub fn envelope(
    method: Option<&str>,
    object: &serde_json::Value,
    signer: Option<(&PlatformKey, SignType)>,
) -> String {
    let key = match method {
        Some(method) => format!("{}_response", method.replace('.', "_")),
        None => "error_response".to_owned(),
    };
    // JSON-escape the key by serialising it as a string value (quotes included).
    let key = serde_json::Value::String(key).to_string();
    let object = response_json(object);
    let mut body = String::with_capacity(key.len() + object.len() + 360);
    body.push('{');
    body.push_str(&key);
    body.push(':');
    body.push_str(&object);
    if let Some((private_key, sign_type)) = signer {
        // Base64 needs no JSON escaping: its alphabet is `A-Za-z0-9+/=`.
        body.push_str(",\"sign\":\"");
        body.push_str(&private_key.sign(sign_type, object.as_bytes()));
        body.push('"');
    }
    body.push('}');
    body
}

/// Rejects keys whose modulus is shorter than [`KEY_BITS_MIN`].
fn check_bits(bits: usize) -> Result<(), KeyError> {
    if bits < KEY_BITS_MIN {
        return Err(KeyError::TooShort { bits });
    }
    Ok(())
}

/// Whether `der` is a private key in either supported form.
fn is_private_key_der(der: &[u8]) -> bool {
    RsaPrivateKey::from_pkcs8_der(der).is_ok() || RsaPrivateKey::from_pkcs1_der(der).is_ok()
}

/// The DER bytes in a key text: the body of the first PEM block if there is one, otherwise
/// the whole text, as base64 with all whitespace ignored. The PEM label is deliberately not
/// trusted; the caller parses the DER to learn what it is.
fn der_from_text(text: &str) -> Result<Vec<u8>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let body = match text.find(BEGIN) {
        None => text,
        Some(at) => {
            let after = &text[at + BEGIN.len()..];
            let label_end = after
                .find(DASHES)
                .ok_or_else(|| KeyError::NotAKey("unterminated PEM BEGIN line".into()))?;
            let label = &after[..label_end];
            let rest = &after[label_end + DASHES.len()..];
            let end = rest
                .find("-----END ")
                .ok_or_else(|| KeyError::NotAKey("PEM block has no END line".into()))?;
            let body = &rest[..end];
            // Legacy encrypted PEM carries `Proc-Type:` headers; PKCS#8 says so in the label.
            if label.contains("ENCRYPTED") || body.contains("Proc-Type:") {
                return Err(KeyError::NotAKey(
                    "encrypted keys are not supported; give the key unencrypted".into(),
                ));
            }
            body
        }
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::NotAKey("empty".into()));
    }
    KEY_BASE64
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotAKey("neither PEM nor base64".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use rsa::pkcs1::EncodeRsaPublicKey;

    use super::*;
    use crate::fuzzing::python_sdk_signed_text;

    /// One platform key per test binary: generation dominates test time.
    fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(generate_key)
    }

    fn platform() -> &'static PlatformKey {
        static KEY: OnceLock<PlatformKey> = OnceLock::new();
        KEY.get_or_init(|| PlatformKey::new(key()).expect("a valid key"))
    }

    #[test]
    fn the_fast_platform_signature_is_the_same_as_the_plain_one() {
        for t in [SignType::Rsa2, SignType::Rsa] {
            assert_eq!(platform().sign(t, b"a=1&b=2"), sign(key(), t, b"a=1&b=2"));
        }
    }

    /// A second key, for "signed by someone else".
    fn other_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(generate_key)
    }

    /// Splits an envelope into (object text, sign) by the layout §4.2 prescribes.
    fn split_envelope<'b>(body: &'b str, key_name: &str) -> (&'b str, &'b str) {
        let prefix = format!("{{\"{key_name}\":");
        let rest = body
            .strip_prefix(prefix.as_str())
            .expect("body starts with the key");
        let cut = rest.rfind(",\"sign\":\"").expect("body has a sign member");
        let sign = rest[cut + 9..]
            .strip_suffix("\"}")
            .expect("body ends with the sign");
        (&rest[..cut], sign)
    }

    #[test]
    fn sign_type_names_round_trip() {
        for t in [SignType::Rsa2, SignType::Rsa] {
            assert_eq!(SignType::parse(t.as_str()), Some(t));
        }
        assert_eq!(SignType::parse("rsa2"), None);
        assert_eq!(SignType::parse("HMAC"), None);
    }

    #[test]
    fn sign_and_verify_round_trip_for_both_types() {
        let public = key().to_public_key();
        let content = "app_id=2021000000000001&method=alipay.trade.query".as_bytes();
        for t in [SignType::Rsa2, SignType::Rsa] {
            let signature = sign(key(), t, content);
            // 2048-bit key: 256 bytes, 344 base64 characters, no line breaks.
            assert_eq!(signature.len(), 344);
            assert!(verify(&public, t, content, &signature));
            assert!(verify(&public, t, content, &format!("  {signature}\r\n")));
        }
    }

    #[test]
    fn verify_rejects_tampering_other_keys_and_garbage() {
        let public = key().to_public_key();
        let content = b"a=1&b=2";
        let signature = sign(key(), SignType::Rsa2, content);
        assert!(!verify(&public, SignType::Rsa2, b"a=1&b=3", &signature));
        assert!(!verify(&public, SignType::Rsa, content, &signature));
        let foreign = sign(other_key(), SignType::Rsa2, content);
        assert!(!verify(&public, SignType::Rsa2, content, &foreign));
        assert!(!verify(
            &other_key().to_public_key(),
            SignType::Rsa2,
            content,
            &signature
        ));
        for garbage in ["", "not base64!", "Zm9v", "====", &signature[..340]] {
            assert!(
                !verify(&public, SignType::Rsa2, content, garbage),
                "{garbage}"
            );
        }
        let mut flipped = STANDARD.decode(&signature).unwrap();
        flipped[100] ^= 1;
        assert!(!verify(
            &public,
            SignType::Rsa2,
            content,
            &STANDARD.encode(flipped)
        ));
    }

    #[test]
    fn public_key_is_read_from_all_four_forms() {
        let public = key().to_public_key();
        let spki_pem = public_key_pem(&public);
        assert!(spki_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(!spki_pem.contains('\r'));
        let pkcs1_pem = public.to_pkcs1_pem(LineEnding::CRLF).unwrap();
        assert!(pkcs1_pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        let spki_b64 = public_key_base64(&public);
        assert!(spki_b64.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert!(!spki_b64.contains('\n'));
        let spki_b64_wrapped: String = spki_b64
            .as_bytes()
            .chunks(60)
            .map(|line| format!("  {}\r\n", std::str::from_utf8(line).unwrap()))
            .collect();
        let pkcs1_b64 = STANDARD.encode(public.to_pkcs1_der().unwrap().as_bytes());
        for text in [&spki_pem, &pkcs1_pem, &spki_b64_wrapped, &pkcs1_b64] {
            assert_eq!(parse_public_key(text).unwrap(), public, "{text}");
        }
        // The label is not trusted: PKCS#1 DER under a SPKI label still parses.
        let mislabelled = pkcs1_pem.replace("RSA PUBLIC KEY", "PUBLIC KEY");
        assert_eq!(parse_public_key(&mislabelled).unwrap(), public);
        // Unpadded base64 as well.
        assert_eq!(
            parse_public_key(spki_b64.trim_end_matches('=')).unwrap(),
            public
        );
    }

    #[test]
    fn private_key_is_read_from_pem_and_bare_base64() {
        let pkcs1 = private_key_pkcs1_pem(key());
        let pkcs8 = private_key_pkcs8_pem(key());
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let bare =
            |pem: &str| -> String { pem.lines().filter(|l| !l.starts_with("-----")).collect() };
        for text in [&pkcs1, &pkcs8, &bare(&pkcs1), &bare(&pkcs8)] {
            assert_eq!(&parse_private_key(text).unwrap(), key());
        }
    }

    #[test]
    fn wrong_or_broken_key_texts_are_refused() {
        let private_pem = private_key_pkcs8_pem(key());
        let err = parse_public_key(&private_pem).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let public_pem = public_key_pem(&key().to_public_key());
        assert!(matches!(
            parse_private_key(&public_pem),
            Err(KeyError::NotAKey(_))
        ));
        for text in [
            "",
            "   \n",
            "hello, world",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjAN",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
        ] {
            assert!(
                matches!(parse_public_key(text), Err(KeyError::NotAKey(_))),
                "{text}"
            );
            assert!(
                matches!(parse_private_key(text), Err(KeyError::NotAKey(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn keys_under_2048_bits_are_refused() {
        let small = RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
        let public = small.to_public_key();
        for text in [
            public_key_pem(&public),
            public_key_base64(&public),
            public.to_pkcs1_pem(LineEnding::LF).unwrap(),
        ] {
            assert!(matches!(
                parse_public_key(&text),
                Err(KeyError::TooShort { bits: 1024 })
            ));
        }
        assert!(matches!(
            parse_private_key(&private_key_pkcs1_pem(&small)),
            Err(KeyError::TooShort { bits: 1024 })
        ));
    }

    #[test]
    fn content_to_sign_matches_the_worked_example() {
        // §2.2 of the reference, in the order received, plus the request's `sign`.
        let received = [
            ("app_id", "2021000000000001"),
            ("method", "alipay.trade.query"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2026-05-01 10:00:00"),
            ("version", "1.0"),
            ("biz_content", r#"{"out_trade_no":"A1"}"#),
            ("sign", "Zm9v..."),
        ];
        let expected = r#"app_id=2021000000000001&biz_content={"out_trade_no":"A1"}&charset=utf-8&method=alipay.trade.query&sign_type=RSA2&timestamp=2026-05-01 10:00:00&version=1.0"#;
        assert_eq!(content_to_sign(received, &["sign"]), expected);
        // Empty values are dropped; excluded names too (a notification also drops sign_type).
        let with_empty = received.into_iter().chain([("notify_url", ""), ("", "x")]);
        assert_eq!(content_to_sign(with_empty, &["sign"]), expected);
        let notification = content_to_sign(received, &["sign", "sign_type"]);
        assert_eq!(notification, expected.replace("&sign_type=RSA2", ""));
        assert_eq!(content_to_sign([], &["sign"]), "");
    }

    #[test]
    fn response_json_escapes_braces_inside_strings_only() {
        let object = serde_json::json!({
            "code": "10000",
            "subject": "a{b}}c \"{\" \\{ 中文",
            "we{ird}": [{"x": "}"}],
        });
        let text = response_json(&object);
        assert_eq!(
            text,
            r#"{"code":"10000","subject":"a\u007bb\u007d\u007dc \"\u007b\" \\\u007b 中文","we\u007bird\u007d":[{"x":"\u007d"}]}"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, object);
        // With no braces in strings it is exactly the compact serialisation.
        let plain = serde_json::json!({"code": "10000", "msg": "Success", "n": [1, {"a": null}]});
        assert_eq!(
            response_json(&plain),
            serde_json::to_string(&plain).unwrap()
        );
    }

    #[test]
    fn envelope_has_the_exact_shape_and_a_verifiable_sign() {
        let object = serde_json::json!({
            "code": "10000",
            "msg": "Success",
            "out_trade_no": "A1",
            "total_amount": "88.88",
        });
        let public = key().to_public_key();
        for t in [SignType::Rsa2, SignType::Rsa] {
            let body = envelope(Some("alipay.trade.query"), &object, Some((platform(), t)));
            assert!(body.starts_with(r#"{"alipay_trade_query_response":{"code":"10000","#));
            assert!(!body.contains(char::is_whitespace));
            let (signed, signature) = split_envelope(&body, "alipay_trade_query_response");
            assert_eq!(signed, response_json(&object));
            assert!(verify(&public, t, signed.as_bytes(), signature));
            // Java's SDK starts reading 2 characters after the key name.
            let java_start = 2 + "alipay_trade_query_response".len() + 2;
            assert_eq!(&body[java_start..java_start + signed.len()], signed);
            // Valid JSON with exactly the response member and the sign.
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
            let members = parsed.as_object().unwrap();
            assert_eq!(members.len(), 2);
            assert_eq!(members["alipay_trade_query_response"], object);
            assert_eq!(members["sign"], signature);
        }
    }

    #[test]
    fn envelope_without_method_or_signer() {
        let object = serde_json::json!({"code": "40001", "msg": "Missing Required Arguments"});
        let body = envelope(None, &object, None);
        assert_eq!(
            body,
            r#"{"error_response":{"code":"40001","msg":"Missing Required Arguments"}}"#
        );
        let body = envelope(Some("x.y"), &object, Some((platform(), SignType::Rsa2)));
        assert!(body.starts_with(r#"{"x_y_response":{"#));
        // A hostile method string cannot break the JSON.
        let body = envelope(Some("a\"}b"), &object, None);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["a\"}b_response"], object);
    }

    #[test]
    fn python_sdk_brace_counter_finds_the_signed_text() {
        let key_name = "alipay_trade_query_response";
        let object = serde_json::json!({
            "code": "10000",
            "msg": "Success",
            "subject": "open {{{ never closed",
            "body": "closed }} too soon",
            "fund_bill_list": [{"amount": "1.00", "fund_channel": "ALIPAYACCOUNT"}],
        });
        let body = envelope(
            Some("alipay.trade.query"),
            &object,
            Some((platform(), SignType::Rsa2)),
        );
        let (signed, signature) = split_envelope(&body, key_name);
        assert_eq!(python_sdk_signed_text(&body, key_name), Some(signed));
        assert!(verify(
            &key().to_public_key(),
            SignType::Rsa2,
            signed.as_bytes(),
            signature
        ));
        // The counter really is fooled by raw braces: without the escaping it would cut the
        // wrong text (this is what the escaping is for).
        let raw = format!("{{\"{key_name}\":{object}}}");
        assert_ne!(
            python_sdk_signed_text(&raw, key_name),
            Some(object.to_string().as_str())
        );
    }
}
