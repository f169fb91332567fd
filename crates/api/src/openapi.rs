//! The OpenAPI 3.1 document, generated from the handlers and types themselves, and a docs
//! page rendered from it (no external assets: the page works offline).

use std::fmt::Write;

use axum::Json;
use axum::response::Html;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{credit, credit_line, fund, hold, merchant, people, trade, wallet, webhook};

/// The REST API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Formica REST API",
        description = "Wallets, transfers, escrow trades, merchants and webhooks. Amounts are exact \
            decimal strings with an ISO 4217 currency; ids are decimal strings; times are \
            nanoseconds since the Unix epoch. Every error has the shape \
            {\"error\": {\"code\", \"message\", \"field\"}} with a stable code (listed under \
            x-error-codes). POSTs that move money need an Idempotency-Key header.",
    ),
    paths(
        people::sign_up, people::sign_in, people::sign_out, people::me, people::set_pin,
        people::verify,
        wallet::balances, wallet::entries, wallet::add_card, wallet::cards, wallet::top_up,
        wallet::withdraw, wallet::movements, wallet::movement, wallet::transfer,
        wallet::transfers, wallet::transfer_one,
        trade::create, trade::list, trade::get_one, trade::pay, trade::ship, trade::confirm,
        trade::close, trade::request_refund, trade::agree_refund, trade::refuse_refund,
        trade::decide, trade::disputes,
        webhook::create, webhook::list, webhook::deliveries,
        merchant::payment_code, merchant::create, merchant::list, merchant::get_one,
        merchant::create_app, merchant::apps, merchant::set_public_key, merchant::platform_key,
        merchant::trades, merchant::settlements, merchant::notifications, merchant::statement,
        merchant::set_fee_rate, merchant::create_trade, merchant::refund,
        fund::create, fund::list, fund::report, fund::subscribe, fund::redeem, fund::holding,
        fund::post_income, fund::set_holidays, fund::holidays,
        credit::score, credit::consents, credit::grant, credit::withdraw, credit::check,
        credit::merchant_consents,
        hold::request, hold::merchant_holds, hold::mine, hold::get_one, hold::authorize,
        hold::charge, hold::unfreeze, hold::debts, hold::repay, hold::add_funding,
        hold::funding, hold::overdue,
        credit_line::open, credit_line::get_line, credit_line::statements, credit_line::repay,
        credit_line::instalments, credit_line::overdue, credit_line::policy,
        credit_line::set_policy,
    ),
    modifiers(&Security, &ErrorCodes, &CommonAnswers),
    tags(
        (name = "people", description = "Sign up, sign in, the payment PIN."),
        (name = "wallet", description = "Balances, bill list, cards, top-ups, withdrawals, transfers."),
        (name = "trades", description = "Escrow trades: the buyer's money is held until they confirm receipt."),
        (name = "webhooks", description = "Signed event deliveries, at least once."),
        (name = "merchants", description = "Shops, their gateway apps and keys, settlements \
            and statements, and the wallet's payment code. Shops take payments through the \
            Alipay-compatible open gateway at /gateway.do."),
        (name = "funds", description = "The pocket-money fund: subscribe, redeem at once or \
            the next business day, daily earnings as new units, the 7-day yield."),
        (name = "credit", description = "The credit score (350-950) with its reasons, and \
            the consents under which a merchant may ask whether it passes a threshold. The \
            credit line: pay at checkout, a statement on the 1st, repay in full, the minimum \
            or in instalments."),
        (name = "holds", description = "Deposit-free holds: a merchant holds a deposit, \
            waived by a good enough credit score or frozen in the wallet; charged or \
            unfrozen at the end; a charge the wallet could not pay is a debt to repay."),
        (name = "operator", description = "For the platform's operators."),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let codes: serde_json::Map<String, serde_json::Value> = crate::CODES
            .iter()
            .map(|(code, status)| ((*code).to_owned(), (*status).into()))
            .collect();
        let extensions = openapi.extensions.get_or_insert_with(Default::default);
        extensions.insert("x-error-codes".to_owned(), codes.into());
    }
}

/// The answers any operation can give besides its own, so that the document lists every
/// status a client can meet: 400 (a malformed id, query or body), 401 (no or a bad token, on
/// the operations that need one), 408 (too slow), 413 and 415 (a body too large or not
/// JSON, on those that take one), 403 and 423 (a wrong, unset or locked PIN, on those whose
/// body has one) and 503 (the server or its queue full).
struct CommonAnswers;

/// Whether the operation's JSON body is a schema with a `pin` property.
fn takes_pin(
    components: Option<&utoipa::openapi::Components>,
    operation: &utoipa::openapi::path::Operation,
) -> bool {
    use utoipa::openapi::{RefOr, schema::Schema};
    let Some(body) = &operation.request_body else {
        return false;
    };
    body.content.values().any(|content| match &content.schema {
        Some(RefOr::Ref(reference)) => {
            let name = reference
                .ref_location
                .rsplit('/')
                .next()
                .unwrap_or_default();
            components
                .and_then(|c| c.schemas.get(name))
                .is_some_and(|schema| {
                    matches!(schema, RefOr::T(Schema::Object(object))
                        if object.properties.contains_key("pin"))
                })
        }
        _ => false,
    })
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let answer = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        let components = openapi.components.clone();
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = operation.request_body.is_some();
                let pin = takes_pin(components.as_ref(), operation);
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| answer(description));
                };
                add(
                    "400",
                    "Malformed input (`invalid_id`, `invalid_json`, `unknown_field`, ...).",
                );
                if secured {
                    add(
                        "401",
                        "No session token, or not a valid one (`unauthenticated`).",
                    );
                }
                if has_body {
                    add("413", "The body is too large (`body_too_large`).");
                    add("415", "The body is not JSON (`unsupported_media_type`).");
                }
                if pin {
                    add(
                        "403",
                        "A wrong PIN, or none set (`pin_incorrect`, `pin_not_set`).",
                    );
                    add(
                        "423",
                        "Too many wrong PINs: locked for a while (`pin_locked`).",
                    );
                }
                add("408", "The request took too long (`request_timeout`).");
                add(
                    "503",
                    "Too many requests at once, or the engine's queue full (`overloaded`, `busy`).",
                );
            }
        }
    }
}

/// `GET /v1/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: every operation with its summary, parameters and answers.
pub(crate) async fn docs_page() -> Html<String> {
    let doc = ApiDoc::openapi();
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Formica REST API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:58rem;margin:2rem auto;padding:0 1rem;color:#222}\
         code{background:#f3f3f3;padding:0 .25rem;border-radius:3px}\
         section{border-top:1px solid #ddd;padding:.5rem 0}\
         .m{font-weight:700;display:inline-block;min-width:4.5rem}\
         </style></head><body><h1>Formica REST API</h1>",
    );
    if let Some(description) = &doc.info.description {
        let _ = write!(page, "<p>{}</p>", escape(description));
    }
    page.push_str(
        "<p>The machine-readable document: <a href=\"/v1/openapi.json\">/v1/openapi.json</a> \
         (OpenAPI 3.1).</p>",
    );
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let _ = write!(
                page,
                "<section><h2><span class=\"m\">{method}</span><code>{}</code></h2>",
                escape(path)
            );
            if let Some(summary) = &operation.summary {
                let _ = write!(page, "<p>{}</p>", escape(summary));
            }
            if let Some(description) = &operation.description {
                let _ = write!(page, "<p>{}</p>", escape(description));
            }
            let statuses: Vec<&str> = operation
                .responses
                .responses
                .keys()
                .map(String::as_str)
                .collect();
            let _ = write!(page, "<p>Answers: {}</p></section>", statuses.join(", "));
        }
    }
    page.push_str("<h2>Error codes</h2><ul>");
    for (code, status) in crate::CODES {
        let _ = write!(page, "<li><code>{code}</code> ({status})</li>");
    }
    page.push_str("</ul></body></html>");
    Html(page)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
