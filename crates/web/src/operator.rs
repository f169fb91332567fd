//! The operator console (operators only): the engine's health, the disputes queue with its
//! decisions, looking up a person or a shop (and setting a person's identity level), and the
//! trial balance per currency.

use std::sync::atomic::Ordering;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::body::Body;
use formica_api::page::PageQuery;
use formica_api::trade::DecisionInput;
use formica_api::wallet::AmountInput;
use formica_core::wallet::Level;
use formica_core::{Currency, Id, Money};
use serde::Deserialize;

use crate::session::{Ctx, Operator, Posted, keyed};
use crate::trade::{TradeLine, line};
use crate::view::{self, Chrome};

#[derive(Template)]
#[template(path = "operator/health.html")]
struct Health {
    chrome: Chrome,
    facts: Vec<(&'static str, String)>,
}

/// `GET /operator`: the engine's health.
pub async fn health(State(state): State<AppState>, Operator(ctx, _): Operator) -> Response {
    let stats = state.engine().stats();
    let get = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let batches = get(&stats.batches);
    let events = get(&stats.events);
    let per = |total: u64| total.checked_div(batches).unwrap_or(0);
    let facts = vec![
        ("Commands waiting", get(&stats.queue_depth).to_string()),
        (
            "Ledger events waiting",
            get(&stats.queued_events).to_string(),
        ),
        ("Batches committed", batches.to_string()),
        ("Ledger events committed", events.to_string()),
        ("Mean batch size (events)", per(events).to_string()),
        (
            "Largest batch (events)",
            get(&stats.largest_batch_events).to_string(),
        ),
        (
            "Mean commit latency",
            format!("{:.3} ms", per(get(&stats.commit_nanos)) as f64 / 1e6),
        ),
        ("Failed commits", get(&stats.failed_batches).to_string()),
        ("Checkpoints written", get(&stats.checkpoints).to_string()),
    ];
    let page = Health {
        chrome: Chrome::new(&ctx, "operator", "Operator console"),
        facts,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "operator/disputes.html")]
struct Disputes {
    chrome: Chrome,
    disputes: Vec<(TradeLine, String, String)>,
    key: String,
    error: Option<String>,
}

async fn disputes_page(
    state: &AppState,
    ctx: &Ctx,
    caller: formica_api::auth::Caller,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let query = PageQuery {
        cursor: None,
        limit: Some(100),
    };
    let page = match formica_api::trade::disputes(State(state.clone()), caller, Query(query)).await
    {
        Ok(page) => page.0,
        Err(error) => return view::api_error(ctx, &error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let disputes = page
        .data
        .iter()
        .map(|t| {
            let (asked, why) = t.refund_request.as_ref().map_or_else(
                || (String::new(), String::new()),
                |r| (view::money(&r.amount), r.reason.clone()),
            );
            (line(t, t.seller_id, offset), asked, why)
        })
        .collect();
    let page = Disputes {
        chrome: Chrome::new(ctx, "operator", "Disputes").notice(done),
        disputes,
        key: view::form_key(),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `?done=`.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /operator/disputes`.
pub async fn disputes(
    State(state): State<AppState>,
    Operator(ctx, caller): Operator,
    Query(done): Query<Done>,
) -> Response {
    disputes_page(&state, &ctx, caller, done.done.as_deref(), None).await
}

/// A decision.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    key: String,
    decision: String,
    #[serde(default)]
    refund_amount: String,
}

/// `POST /operator/disputes/{trade}`: refund, release or split.
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<DecideForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/disputes");
    };
    if caller.operator().is_err() {
        return view::message(
            &ctx,
            StatusCode::FORBIDDEN,
            "Operators only",
            "This page is for the platform's operators.",
        );
    }
    let currency = match id.parse::<Id>() {
        Ok(trade_id) => state
            .pool()
            .read(move |sql| formica_store::trade::trade(sql, trade_id))
            .await
            .ok()
            .flatten()
            .map_or_else(|| "CNY".to_owned(), |t| t.amount.currency.code().to_owned()),
        Err(_) => return view::not_found(&ctx),
    };
    let split = value.decision == "split";
    let body = Body {
        value: DecisionInput {
            decision: value.decision.clone(),
            refund_amount: split.then(|| AmountInput {
                amount: value.refund_amount.trim().to_owned(),
                currency,
            }),
        },
        digest,
    };
    let decided = formica_api::trade::decide(
        State(state.clone()),
        caller.clone(),
        Path(id),
        keyed(&value.key),
        body,
    )
    .await;
    match decided {
        Ok(_) => view::done("/operator/disputes?done=decided"),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            disputes_page(&state, &ctx, caller, None, said).await
        }
    }
}

/// A person found.
struct PersonFound {
    id: String,
    login: String,
    name: String,
    role: String,
    level: String,
    since: String,
    balances: Vec<String>,
    shops: Vec<(String, String)>,
}

/// A shop found.
struct ShopFound {
    id: String,
    name: String,
    owner: String,
    category: String,
    fee: String,
}

#[derive(Template)]
#[template(path = "operator/lookup.html")]
struct Lookup {
    chrome: Chrome,
    q: String,
    person: Option<PersonFound>,
    shop: Option<ShopFound>,
    searched: bool,
}

/// `?q=`: a login, a person's id or a shop's id.
#[derive(Debug, Default, Deserialize)]
pub struct LookupQuery {
    #[serde(default)]
    q: String,
    done: Option<String>,
}

/// `GET /operator/lookup`.
pub async fn lookup(
    State(state): State<AppState>,
    Operator(ctx, _): Operator,
    Query(query): Query<LookupQuery>,
) -> Response {
    let q = query.q.trim().to_owned();
    let offset = state.engine().settings().day_offset_seconds;
    let (mut person, mut shop) = (None, None);
    if !q.is_empty() {
        let by_login = formica_api::normalize_login(&q).ok();
        let id: Option<Id> = q.parse().ok();
        let found = state
            .pool()
            .with_store(move |store| {
                let (user, merchant) = store.read_sql(|sql| {
                    let user = match (&by_login, id) {
                        (Some(login), _) => formica_store::people::user_by_login(sql, login)?,
                        (None, Some(id)) => formica_store::people::user(sql, id)?,
                        _ => None,
                    };
                    let user = match (user, id) {
                        (None, Some(id)) => formica_store::people::user(sql, id)?,
                        (user, _) => user,
                    };
                    let merchant = match id {
                        Some(id) => formica_store::merchant::merchant(sql, id)?,
                        None => None,
                    };
                    Ok((user, merchant))
                })?;
                let Some(user) = user else {
                    return Ok((None, merchant));
                };
                let (level, shops) = store.read_sql(|sql| {
                    Ok((
                        formica_store::people::level(sql, user.id)?.unwrap_or_default(),
                        formica_store::merchant::merchants_of(sql, user.id)?,
                    ))
                })?;
                let mut balances = Vec::new();
                for currency in Currency::all() {
                    let account = formica_core::wallet::wallet_account(user.id, *currency);
                    if let Some(account) = store.account(account)? {
                        let minor = u64::try_from(account.available().max(0)).unwrap_or(u64::MAX);
                        balances.push(Money::new(minor, *currency));
                    }
                }
                Ok((Some((user, level, shops, balances)), merchant))
            })
            .await;
        match found {
            Ok((found_person, found_shop)) => {
                person = found_person.map(|(user, level, shops, balances)| PersonFound {
                    id: user.id.to_string(),
                    login: user.login.clone(),
                    name: user.display_name.clone(),
                    role: user.role.clone(),
                    level: level.as_str().to_owned(),
                    since: view::time(user.created_at, offset),
                    balances: balances.iter().map(view::money).collect(),
                    shops: shops
                        .iter()
                        .map(|m| (m.id.to_string(), m.name.clone()))
                        .collect(),
                });
                shop = found_shop.map(|m| ShopFound {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    owner: m.owner_id.to_string(),
                    category: m.category.clone(),
                    fee: format!("{:.2}%", f64::from(m.fee_ppm) / 10_000.0),
                });
            }
            Err(error) => return view::failure(&error),
        }
    }
    let page = Lookup {
        chrome: Chrome::new(&ctx, "operator", "Look up").notice(query.done.as_deref()),
        searched: !q.is_empty(),
        q,
        person,
        shop,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// The identity level form.
#[derive(Debug, Deserialize)]
pub struct LevelForm {
    level: String,
}

/// `POST /operator/people/{id}/level`.
pub async fn set_level(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<LevelForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/lookup");
    };
    let level = if value.level == "verified" {
        Level::Verified
    } else {
        Level::Unverified
    };
    let body = Body {
        value: formica_api::people::Verification { level },
        digest,
    };
    match formica_api::people::verify(State(state), caller, Path(id.clone()), body).await {
        Ok(_) => view::done(&format!("/operator/lookup?q={id}&done=verified")),
        Err(error) => view::api_error(&ctx, &error),
    }
}

#[derive(Template)]
#[template(path = "operator/trial_balance.html")]
struct TrialBalance {
    chrome: Chrome,
    rows: Vec<[String; 7]>,
    holds: bool,
    problems: Vec<String>,
}

/// `GET /operator/trial-balance`: per currency, the four balances summed over every account;
/// debits equal credits in a ledger that balances.
pub async fn trial_balance(State(state): State<AppState>, Operator(ctx, _): Operator) -> Response {
    let balance = match state.pool().with_store(|store| store.trial_balance()).await {
        Ok(balance) => balance,
        Err(error) => return view::failure(&error),
    };
    let rows = balance
        .ledgers
        .iter()
        .map(|(ledger, totals)| {
            let currency = Currency::from_ledger(*ledger);
            let show = |sum: formica_ledger::Sum| match (sum.to_u128(), currency) {
                (Some(v), Some(c)) if v <= u128::from(u64::MAX) => {
                    view::money(&Money::new(v as u64, c))
                }
                (Some(v), _) => v.to_string(),
                (None, _) => format!("{}·2^128 + {}", sum.high, sum.low),
            };
            [
                currency.map_or_else(|| ledger.to_string(), |c| c.code().to_owned()),
                totals.accounts.to_string(),
                show(totals.debits_posted),
                show(totals.credits_posted),
                show(totals.debits_pending),
                show(totals.credits_pending),
                if totals.balanced() { "yes" } else { "NO" }.to_owned(),
            ]
        })
        .collect();
    let mut problems: Vec<String> = balance
        .mismatched_accounts
        .iter()
        .map(|m| {
            format!(
                "account {:032x}: stored balances differ from its transfers",
                m.account_id
            )
        })
        .collect();
    problems.extend(balance.books_error.clone());
    let page = TrialBalance {
        chrome: Chrome::new(&ctx, "operator", "Trial balance"),
        holds: balance.holds(),
        rows,
        problems,
    };
    view::render(&ctx, StatusCode::OK, &page)
}
