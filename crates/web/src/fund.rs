//! The pocket-money fund's pages: in the wallet, the funds with their 7-day yield, a holding
//! (yesterday's earnings, in all, the yield chart, earnings by day) with subscribe and redeem;
//! in the operator console, defining funds, the holiday calendar, posting a day's income and
//! the fund's report.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::fund::{FundMove, FundReport, NewFund, NewIncome};
use formica_api::wallet::{AmountInput, PersonRef};
use formica_core::Money;
use formica_core::fund::{Fund, Income, seven_day_yield};
use serde::Deserialize;

use crate::session::{Ctx, Operator, Posted, Signed, keyed};
use crate::svg;
use crate::view::{self, Chrome};

/// A yield in millionths as a percentage: `3.9825%`.
pub fn percent(ppm: u64) -> String {
    format!("{}.{:04}%", ppm / 10_000, ppm % 10_000)
}

/// A person's units account of each fund (None where they never held it).
async fn units_accounts(
    state: &AppState,
    holder: formica_core::Id,
    funds: &[Fund],
) -> Vec<Option<formica_ledger::Account>> {
    let accounts: Vec<u128> = funds
        .iter()
        .map(|f| formica_core::fund::units_account(holder, f))
        .collect();
    state
        .pool()
        .with_store(move |store| store.accounts(&accounts))
        .await
        .unwrap_or_default()
}

/// What a person can pay from besides the wallet in `currency`: their pocket funds (fund
/// id, name and units held) and their credit line (`credit`, with what it has left).
pub async fn sources(
    state: &AppState,
    holder: formica_core::Id,
    currency: formica_core::Currency,
) -> Vec<(String, String)> {
    let Ok(funds) = funds_list(state).await else {
        return Vec::new();
    };
    let funds: Vec<Fund> = funds
        .into_iter()
        .filter(|f| f.currency == currency)
        .collect();
    let held = units_accounts(state, holder, &funds).await;
    let line = state
        .pool()
        .read(move |sql| formica_store::credit::credit_line(sql, holder))
        .await
        .ok()
        .flatten()
        .filter(|l| l.limit.currency == currency && !l.overdue && l.available() > 0)
        .map(|l| {
            let left = Money::new(l.available(), currency);
            (
                "credit".to_owned(),
                format!("Credit line ({} available)", view::money(&left)),
            )
        });
    funds
        .iter()
        .zip(held)
        .filter_map(|(fund, account)| {
            // Confirmed units: posted credits less what was sold.
            let units = account.map_or(0, |a| a.credits_posted - a.debits_posted);
            let units = u64::try_from(units).ok().filter(|u| *u > 0)?;
            Some((
                fund.id.to_string(),
                format!(
                    "{} ({})",
                    fund.name,
                    view::money(&Money::new(units, fund.currency))
                ),
            ))
        })
        .chain(line)
        .collect()
}

/// `?done=`.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

struct FundLine {
    id: String,
    name: String,
    yield_7d: String,
    units: String,
    last_earned: String,
}

#[derive(Template)]
#[template(path = "wallet/funds.html")]
struct Funds {
    chrome: Chrome,
    funds: Vec<FundLine>,
}

async fn funds_list(state: &AppState) -> Result<Vec<Fund>, Response> {
    state
        .pool()
        .read(formica_store::fund::funds)
        .await
        .map_err(|e| view::failure(&e))
}

/// `GET /wallet/funds`: the funds, and what the person holds of each.
pub async fn list(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    let funds = match funds_list(&state).await {
        Ok(funds) => funds,
        Err(response) => return response,
    };
    let held = units_accounts(&state, caller.0.id, &funds).await;
    let lines = funds
        .iter()
        .enumerate()
        .map(|(i, fund)| {
            let units = held.get(i).copied().flatten().map(|a| {
                u64::try_from(a.credits_posted + a.credits_pending - a.debits_posted)
                    .unwrap_or(u64::MAX)
            });
            FundLine {
                id: fund.id.to_string(),
                name: fund.name.clone(),
                yield_7d: fund.yield_7d_ppm.map(percent).unwrap_or_default(),
                units: units
                    .map(|u| view::money(&Money::new(u, fund.currency)))
                    .unwrap_or_default(),
                last_earned: String::new(),
            }
        })
        .collect();
    let page = Funds {
        chrome: Chrome::new(&ctx, "wallet", "Pocket fund"),
        funds: lines,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "wallet/fund.html")]
struct FundPage {
    chrome: Chrome,
    id: String,
    name: String,
    currency: String,
    yield_7d: String,
    chart: String,
    units: String,
    pending: String,
    earned_total: String,
    last_earned: Option<(String, String)>,
    instant_left: String,
    earnings: Vec<(String, String)>,
    activity: Vec<(String, String, String)>,
    key: String,
    error: Option<String>,
}

/// The 7-day yield on each day that has seven days of incomes before it, oldest first.
fn yields(incomes_newest_first: &[(i64, Income)]) -> Vec<(String, u64)> {
    let oldest_first: Vec<&(i64, Income)> = incomes_newest_first.iter().rev().collect();
    oldest_first
        .windows(7)
        .map(|week| {
            let last_seven = [0, 1, 2, 3, 4, 5, 6].map(|i| week[i].1);
            (
                formica_api::gateway::time::format_day(week[6].0),
                seven_day_yield(&last_seven),
            )
        })
        .collect()
}

async fn fund_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let report =
        match formica_api::fund::report(State(state.clone()), caller.clone(), Path(id.to_owned()))
            .await
        {
            Ok(report) => report.0,
            Err(error) => return view::api_error(ctx, &error),
        };
    let fund = report.fund;
    let view_ = match formica_api::fund::holding_view(state, &fund, caller.0.id).await {
        Ok(view_) => view_,
        Err(error) => return view::api_error(ctx, &error),
    };
    let fund_id = fund.id;
    let incomes = state
        .pool()
        .read(move |sql| formica_store::fund::incomes(sql, fund_id, 36))
        .await
        .unwrap_or_default();
    let mut activity: Vec<(u64, String, String, String)> = view_
        .subscriptions
        .iter()
        .map(|s| {
            (
                s.created_at,
                "Bought".to_owned(),
                view::money(&s.amount),
                if s.confirmed {
                    "confirmed".to_owned()
                } else {
                    format!(
                        "earns from {}",
                        formica_api::gateway::time::format_day(s.confirm_day)
                    )
                },
            )
        })
        .chain(view_.redemptions.iter().map(|r| {
            (
                r.created_at,
                "Sold".to_owned(),
                view::money(&r.amount),
                if r.paid {
                    "paid to the wallet".to_owned()
                } else {
                    format!(
                        "arrives {}",
                        formica_api::gateway::time::format_day(r.pay_day)
                    )
                },
            )
        }))
        .collect();
    activity.sort_by_key(|a| std::cmp::Reverse(a.0));
    let page = FundPage {
        chrome: Chrome::new(ctx, "wallet", fund.name.clone()).notice(done),
        id: fund.id.to_string(),
        name: fund.name.clone(),
        currency: fund.currency.code().to_owned(),
        yield_7d: fund.yield_7d_ppm.map(percent).unwrap_or_default(),
        chart: svg::yield_chart(&yields(&incomes)),
        units: view::money(&view_.units),
        pending: if view_.pending.amount_minor == 0 {
            String::new()
        } else {
            view::money(&view_.pending)
        },
        earned_total: view::money(&view_.earned_total),
        last_earned: view_
            .last_earned
            .as_ref()
            .map(|(day, amount)| (day.clone(), view::money(amount))),
        instant_left: view::money(&view_.instant_left),
        earnings: view_
            .earnings
            .iter()
            .map(|e| (e.day.clone(), view::money(&e.amount)))
            .collect(),
        activity: activity
            .into_iter()
            .map(|(_, what, amount, state)| (what, amount, state))
            .collect(),
        key: view::form_key(),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /wallet/funds/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    fund_page(&state, &ctx, &caller, &id, done.done.as_deref(), None).await
}

/// The subscribe and redeem forms.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    key: String,
    amount: String,
    #[serde(default)]
    speed: String,
    pin: String,
}

/// `POST /wallet/funds/{id}/{subscribe|redeem}`.
pub async fn move_money(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    form: Posted<MoveForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/wallet/funds/{id}"));
    };
    let currency = match funds_list(&state).await {
        Ok(funds) => funds
            .iter()
            .find(|f| f.id.to_string() == id)
            .map(|f| f.currency.code().to_owned()),
        Err(response) => return response,
    };
    let Some(currency) = currency else {
        return view::not_found(&ctx);
    };
    let redeem = action == "redeem";
    if !redeem && action != "subscribe" {
        return view::not_found(&ctx);
    }
    let body = Body {
        value: FundMove {
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency,
            },
            instant: redeem.then_some(value.speed != "normal"),
            pin: value.pin,
        },
        digest,
    };
    let (st, c, p, h) = (
        State(state.clone()),
        caller.clone(),
        Path(id.clone()),
        keyed(&value.key),
    );
    let done = if redeem {
        formica_api::fund::redeem(st, c, p, h, body)
            .await
            .map(|_| "sold")
    } else {
        formica_api::fund::subscribe(st, c, p, h, body)
            .await
            .map(|_| "bought")
    };
    match done {
        Ok(done) => view::done(&format!("/wallet/funds/{id}?done={done}")),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            fund_page(&state, &ctx, &caller, &id, None, said).await
        }
    }
}

#[derive(Template)]
#[template(path = "operator/funds.html")]
struct OperatorFunds {
    chrome: Chrome,
    funds: Vec<FundLine>,
    holidays: String,
    error: Option<String>,
}

async fn operator_funds_page(
    state: &AppState,
    ctx: &Ctx,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let funds = match funds_list(state).await {
        Ok(funds) => funds,
        Err(response) => return response,
    };
    let holidays = state
        .pool()
        .read(formica_store::fund::holidays)
        .await
        .unwrap_or_default();
    let page = OperatorFunds {
        chrome: Chrome::new(ctx, "operator", "Funds").notice(done),
        funds: funds
            .iter()
            .map(|f| FundLine {
                id: f.id.to_string(),
                name: f.name.clone(),
                yield_7d: f.yield_7d_ppm.map(percent).unwrap_or_default(),
                units: String::new(),
                last_earned: formica_api::gateway::time::format_day(f.accrued_through),
            })
            .collect(),
        holidays: holidays
            .into_iter()
            .map(formica_api::gateway::time::format_day)
            .collect::<Vec<_>>()
            .join("\n"),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /operator/funds`.
pub async fn operator_funds(
    State(state): State<AppState>,
    Operator(ctx, _): Operator,
    Query(done): Query<Done>,
) -> Response {
    operator_funds_page(&state, &ctx, done.done.as_deref(), None).await
}

/// The new fund form.
#[derive(Debug, Deserialize)]
pub struct NewFundForm {
    name: String,
    currency: String,
    manager: String,
    #[serde(default)]
    cutoff: String,
    #[serde(default)]
    instant_limit: String,
}

/// `POST /operator/funds`.
pub async fn create(State(state): State<AppState>, form: Posted<NewFundForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/funds");
    };
    let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let body = Body {
        value: NewFund {
            name: value.name,
            currency: value.currency,
            manager: PersonRef {
                user_id: None,
                login: Some(value.manager.trim().to_owned()),
            },
            cutoff: optional(&value.cutoff),
            instant_limit: optional(&value.instant_limit),
        },
        digest,
    };
    match formica_api::fund::create(State(state.clone()), caller, body).await {
        Ok((_, fund)) => view::done(&format!("/operator/funds/{}?done=fund", fund.0.id)),
        Err(error) => {
            operator_funds_page(&state, &ctx, None, Some((error.status, view::say(&error)))).await
        }
    }
}

/// The holidays form: one day a line.
#[derive(Debug, Deserialize)]
pub struct HolidaysForm {
    #[serde(default)]
    days: String,
}

/// `POST /operator/holidays`.
pub async fn set_holidays(State(state): State<AppState>, form: Posted<HolidaysForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/funds");
    };
    let days = value
        .days
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let body = Body {
        value: formica_api::fund::Holidays { days },
        digest,
    };
    match formica_api::fund::set_holidays(State(state.clone()), caller, body).await {
        Ok(_) => view::done("/operator/funds?done=holidays"),
        Err(error) => {
            operator_funds_page(&state, &ctx, None, Some((error.status, view::say(&error)))).await
        }
    }
}

#[derive(Template)]
#[template(path = "operator/fund.html")]
struct OperatorFund {
    chrome: Chrome,
    report: FundReport,
    id: String,
    yield_7d: String,
    next_day: String,
    facts: Vec<(&'static str, String)>,
    error: Option<String>,
}

async fn operator_fund_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let report = match formica_api::fund::report(
        State(state.clone()),
        caller.clone(),
        Path(id.into()),
    )
    .await
    {
        Ok(report) => report.0,
        Err(error) => return view::api_error(ctx, &error),
    };
    let fund = &report.fund;
    let day = formica_api::gateway::time::format_day;
    let facts = vec![
        ("Holders", report.holders.to_string()),
        ("Units outstanding", view::money(&report.units_outstanding)),
        ("Of which pending", view::money(&report.units_pending)),
        ("The fund's money", view::money(&report.money)),
        ("Rounding kept", view::money(&report.residual)),
        (
            "Reconciled",
            if report.reconciled {
                "yes: units outstanding equal the fund's money".to_owned()
            } else {
                "NO".to_owned()
            },
        ),
        ("Credited through", day(fund.accrued_through)),
        (
            "Crediting now",
            fund.accrual.as_ref().map_or_else(
                || "nothing".to_owned(),
                |a| {
                    let stalled = if a.stalled {
                        " STALLED: a chunk would have credited more than was paid in"
                    } else {
                        ""
                    };
                    format!(
                        "{} ({} of {} credited){stalled}",
                        day(a.day),
                        view::money(&Money::new(a.credited, fund.currency)),
                        view::money(&Money::new(a.total, fund.currency))
                    )
                },
            ),
        ),
        ("Instant limit a day", view::money(&fund.instant_limit)),
        (
            "Cut-off",
            format!(
                "{:02}:{:02}",
                fund.cutoff_second / 3600,
                fund.cutoff_second % 3600 / 60
            ),
        ),
    ];
    let page = OperatorFund {
        chrome: Chrome::new(ctx, "operator", fund.name.clone()).notice(done),
        id: fund.id.to_string(),
        yield_7d: fund.yield_7d_ppm.map(percent).unwrap_or_default(),
        next_day: day(fund.accrued_through + 1),
        facts,
        report,
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /operator/funds/{id}`: the report and the income form.
pub async fn operator_fund(
    State(state): State<AppState>,
    Operator(ctx, caller): Operator,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    operator_fund_page(&state, &ctx, &caller, &id, done.done.as_deref(), None).await
}

/// The income form.
#[derive(Debug, Deserialize)]
pub struct IncomeForm {
    day: String,
    income: String,
}

/// `POST /operator/funds/{id}/incomes`.
pub async fn post_income(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<IncomeForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/operator/funds/{id}"));
    };
    let body = Body {
        value: NewIncome {
            day: value.day.trim().to_owned(),
            income: value.income.trim().to_owned(),
        },
        digest,
    };
    match formica_api::fund::post_income(
        State(state.clone()),
        caller.clone(),
        Path(id.clone()),
        body,
    )
    .await
    {
        Ok(_) => view::done(&format!("/operator/funds/{id}?done=income")),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            operator_fund_page(&state, &ctx, &caller, &id, None, said).await
        }
    }
}
