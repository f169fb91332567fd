//! Properties of the code that reads hostile input, one function per fuzz target
//! (`fuzz/fuzz_targets/`, built and run by `scripts/fuzz`). Each takes the fuzzer's bytes,
//! runs the production code that reads such input — amounts, the gateway's forms, signatures
//! and keys, notifications and answers, webhook bodies, request bodies turned into core
//! commands — and panics when a property breaks. The targets are one line each; the
//! workspace tests run the same functions over the committed seeds (`fuzz/seeds/`), so
//! `cargo test` checks the properties too, without a fuzzer or a nightly toolchain.

mod command;
mod gateway;
mod money;
mod notify;
mod webhook;

use std::sync::{Arc, OnceLock};

use formica_core::{Currency, Id};
use formica_store::merchant::App;

use crate::gateway::AppKeys;
use crate::gateway::sign::{self, PlatformKey, RsaPrivateKey};

pub use command::command;
pub use gateway::{gateway_key, gateway_request};
pub use money::money;
pub use notify::notify;
pub use webhook::webhook;

/// A target's property: panics on the input that breaks it.
pub type Property = fn(&[u8]);

/// Every target: its name (the binary, its corpus and seed folders) and its property.
pub const TARGETS: &[(&str, Property)] = &[
    ("money", money),
    ("gateway_request", gateway_request),
    ("gateway_key", gateway_key),
    ("notify", notify),
    ("webhook", webhook),
    ("command", command),
];

/// The app whose requests the gateway target checks.
pub const APP_ID: &str = "2021000000000001";

/// The one RSA key of the targets: the app's key that signs requests and the platform's key
/// that signs answers and notifications. It is fixed so that the committed seeds carry
/// signatures that verify; it is a test key and guards nothing.
pub fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        sign::parse_private_key(include_str!("key.pem")).expect("the committed test key reads")
    })
}

/// [`key`], ready to sign as the platform does.
pub fn platform() -> &'static PlatformKey {
    static KEY: OnceLock<PlatformKey> = OnceLock::new();
    KEY.get_or_init(|| PlatformKey::new(key()).expect("the committed test key is usable"))
}

/// The app [`APP_ID`]: its merchant signs with [`key`], and so does the platform.
fn app_keys() -> Arc<AppKeys> {
    static KEYS: OnceLock<Arc<AppKeys>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let public = sign::public_key_base64(&key().to_public_key());
        Arc::new(AppKeys {
            app: App {
                app_id: APP_ID.to_owned(),
                merchant_id: Id(7),
                name: "fuzz".to_owned(),
                public_key: Some(public.clone()),
                platform_private_key: String::new(),
                platform_public_key: public,
                escrow: false,
                sign_type: "RSA2".to_owned(),
                created_at: 0,
            },
            platform: PlatformKey::new(key()).expect("the committed test key is usable"),
            merchant: Some(key().to_public_key()),
            currency: Currency::CNY,
        })
    });
    Arc::clone(keys)
}

/// What python-alipay-sdk takes as the signed text of an answer (§4.2): from the first `{`
/// after the first occurrence of the key name, counting braces without knowing about JSON
/// strings, until the count returns to zero.
pub fn python_sdk_signed_text<'b>(body: &'b str, key_name: &str) -> Option<&'b str> {
    let after_key = body.find(key_name)? + key_name.len();
    let start = after_key + body[after_key..].find('{')?;
    let mut depth = 0usize;
    for (i, b) in body.bytes().enumerate().skip(start) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[start..=i]);
                }
            }
            _ => {}
        }
    }
    None
}
