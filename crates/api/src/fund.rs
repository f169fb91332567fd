//! The pocket-money fund over REST: operators define funds and the holiday calendar; the
//! operator or the fund's manager posts each day's income; people subscribe, redeem (at once
//! within the daily limit, or the next business day) and read their holding and earnings;
//! a fund's report reconciles its units with its money.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::fund::{
    Fund, FundCommand, Income, Redemption, Subscription, fund_account, issuer_account,
    residual_account, units_account,
};
use formica_core::products::transfer_kind;
use formica_core::{Currency, Id, Money, Outcome, ProductCommand};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody, money_error};
use crate::gateway::time;
use crate::idempotency;
use crate::wallet::{AmountInput, PersonRef, check_pin, fingerprint};

/// A fund to define.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFund {
    /// Its name.
    pub name: String,
    /// The currency of its units.
    pub currency: String,
    /// The fund company's person: its wallet pays the daily income in.
    pub manager: PersonRef,
    /// The daily cut-off, `HH:MM` in the platform's time zone (default `15:00`).
    pub cutoff: Option<String>,
    /// The instant redemption limit per person per day (default 10,000.00).
    pub instant_limit: Option<String>,
}

impl NewFund {
    /// The name, trimmed, and the currency, checked.
    pub fn name_and_currency(&self) -> Result<(&str, Currency), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(ApiError::new("invalid_field", "1 to 64 characters").field("name"));
        }
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|e| money_error(e, "currency"))?;
        Ok((name, currency))
    }

    /// The instant redemption limit asked for, or the default, in `currency`.
    pub fn instant_limit(&self, currency: Currency) -> Result<Money, ApiError> {
        match &self.instant_limit {
            Some(text) => Money::parse(text, currency).map_err(|e| money_error(e, "instant_limit")),
            None => Ok(Money::new(
                formica_core::fund::INSTANT_LIMIT_MAJOR * 10u64.pow(u32::from(currency.exponent())),
                currency,
            )),
        }
    }
}

/// A fund's daily cut-off, `HH:MM`, as seconds after midnight.
pub fn cutoff_second(text: &str) -> Result<u32, ApiError> {
    let bad = || ApiError::new("invalid_field", "a time of day, HH:MM").field("cutoff");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    let (hours, minutes): (u32, u32) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    if hours > 23 || minutes > 59 || text.len() != 5 {
        return Err(bad());
    }
    Ok(hours * 3600 + minutes * 60)
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    path: &str,
    digest: &str,
    command: FundCommand,
) -> Result<Outcome, ApiError> {
    idempotency::submit(
        state,
        caller.0.id,
        key,
        fingerprint("POST", path, digest),
        ProductCommand::Fund(command),
    )
    .await
}

/// Defines a fund (operators only).
#[utoipa::path(post, path = "/v1/funds", tag = "funds", request_body = NewFund,
    responses((status = 201, body = Fund), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body<NewFund>,
) -> Result<(StatusCode, Json<Fund>), ApiError> {
    caller.operator()?;
    let value = &body.value;
    let (name, currency) = value.name_and_currency()?;
    let manager_id = value.manager.resolve(&state, "manager").await?;
    let cutoff_second = match &value.cutoff {
        Some(text) => cutoff_second(text)?,
        None => formica_core::fund::CUTOFF_DEFAULT,
    };
    let instant_limit = value.instant_limit(currency)?;
    let command = FundCommand::Create {
        name: name.to_owned(),
        currency,
        manager_id,
        cutoff_second,
        instant_limit,
    };
    match submit(&state, &caller, None, "/v1/funds", &body.digest, command).await? {
        Outcome::Fund(fund) => Ok((StatusCode::CREATED, Json(fund))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The funds.
#[utoipa::path(get, path = "/v1/funds", tag = "funds",
    responses((status = 200, body = Vec<Fund>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<Fund>>, ApiError> {
    Ok(Json(state.pool().read(formica_store::fund::funds).await?))
}

async fn fund_of(state: &AppState, id: &str) -> Result<Fund, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("fund_not_found"))?;
    state
        .pool()
        .read(move |sql| formica_store::fund::fund(sql, id))
        .await?
        .ok_or_else(|| ApiError::not_found("fund_not_found"))
}

/// A fund's report: holders, units and money, and whether they reconcile.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FundReport {
    /// The fund.
    pub fund: Fund,
    /// People who hold or held units.
    pub holders: u64,
    /// Units outstanding, confirmed or not (as money: one unit is 1.00).
    pub units_outstanding: Money,
    /// Of which not yet confirmed.
    pub units_pending: Money,
    /// The fund's money not promised to anyone.
    pub money: Money,
    /// What rounding left of the daily incomes.
    pub residual: Money,
    /// Whether units outstanding equal the fund's money, as the books say.
    pub reconciled: bool,
    /// The last 30 days' income per 10,000 units, newest first.
    pub incomes: Vec<DayIncome>,
}

/// One day's income.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayIncome {
    /// The day, `yyyy-MM-dd`.
    pub day: String,
    /// Income per 10,000 units.
    pub income: Income,
}

/// A fund and its report.
#[utoipa::path(get, path = "/v1/funds/{id}", tag = "funds",
    params(("id" = String, Path, description = "The fund")),
    responses((status = 200, body = FundReport), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FundReport>, ApiError> {
    let fund = fund_of(&state, &id).await?;
    let currency = fund.currency;
    let (fund_id, issuer) = (fund.id, issuer_account(&fund));
    let (counts, incomes, accounts) = state
        .pool()
        .with_store(move |store| {
            let (counts, incomes) = store.read_sql(|sql| {
                Ok((
                    formica_store::fund::report(sql, fund_id)?,
                    formica_store::fund::incomes(sql, fund_id, 30)?,
                ))
            })?;
            // One read: units and money of the same moment, or they may seem not to agree.
            let read = store.accounts(&[
                issuer,
                fund_account(fund_id, currency),
                residual_account(fund_id, currency),
            ])?;
            let accounts = (read[0], read[1], read[2]);
            Ok((counts, incomes, accounts))
        })
        .await?;
    let minor = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    let outstanding = accounts.0.map_or(0, |a| {
        i128::try_from(a.debits_posted + a.debits_pending).unwrap_or(i128::MAX)
            - i128::try_from(a.credits_posted).unwrap_or(0)
    });
    let money = accounts.1.map_or(0, |a| a.available());
    let residual = accounts.2.map_or(0, |a| a.available());
    Ok(Json(FundReport {
        holders: counts.0,
        units_outstanding: Money::new(minor(outstanding), currency),
        units_pending: Money::new(counts.1, currency),
        money: Money::new(minor(money), currency),
        residual: Money::new(minor(residual), currency),
        reconciled: outstanding == money,
        incomes: incomes
            .into_iter()
            .map(|(day, income)| DayIncome {
                day: time::format_day(day),
                income,
            })
            .collect(),
        fund,
    }))
}

/// Money into or out of a fund.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundMove {
    /// How much (units are worth 1.00 each).
    pub amount: AmountInput,
    /// For a redemption: at once, within the daily limit (default), or the next business day.
    pub instant: Option<bool>,
    /// The payment PIN.
    pub pin: String,
}

/// Buys units with money from the wallet: they are confirmed, and start earning, on the
/// business day after the trade day (today before the cut-off, else the next business day).
#[utoipa::path(post, path = "/v1/funds/{id}/subscriptions", tag = "funds", request_body = FundMove,
    params(("id" = String, Path, description = "The fund"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 201, body = Subscription), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<FundMove>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let key = idempotency::key(&headers, true)?;
    let fund = fund_of(&state, &id).await?;
    if body.value.instant.is_some() {
        return Err(
            ApiError::new("invalid_field", "only a redemption is instant or not").field("instant"),
        );
    }
    let amount = body.value.amount.money("amount")?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = FundCommand::Subscribe {
        fund_id: fund.id,
        holder_id: caller.0.id,
        amount,
    };
    let path = format!("/v1/funds/{}/subscriptions", fund.id);
    match submit(&state, &caller, key, &path, &body.digest, command).await? {
        Outcome::Subscription(s) => Ok((StatusCode::CREATED, Json(s))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// Sells units back: at once up to the fund's daily instant limit (10,000.00 by default),
/// or normally, arriving on the next business day. Units stop earning the day they are sold.
#[utoipa::path(post, path = "/v1/funds/{id}/redemptions", tag = "funds", request_body = FundMove,
    params(("id" = String, Path, description = "The fund"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 201, body = Redemption), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn redeem(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<FundMove>,
) -> Result<(StatusCode, Json<Redemption>), ApiError> {
    let key = idempotency::key(&headers, true)?;
    let fund = fund_of(&state, &id).await?;
    let amount = body.value.amount.money("amount")?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = FundCommand::Redeem {
        fund_id: fund.id,
        holder_id: caller.0.id,
        amount,
        instant: body.value.instant.unwrap_or(true),
    };
    let path = format!("/v1/funds/{}/redemptions", fund.id);
    match submit(&state, &caller, key, &path, &body.digest, command).await? {
        Outcome::Redemption(r) => Ok((StatusCode::CREATED, Json(r))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// A person's holding of a fund.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldingView {
    /// The fund.
    pub fund_id: Id,
    /// Units held, confirmed or not (one unit is 1.00).
    pub units: Money,
    /// Of which not yet confirmed (not earning, not redeemable yet).
    pub pending: Money,
    /// Earnings credited in all.
    pub earned_total: Money,
    /// The last day's earnings: the day (`yyyy-MM-dd`) and the amount.
    pub last_earned: Option<(String, Money)>,
    /// Redeemable instantly today.
    pub instant_left: Money,
    /// Daily earnings, newest first (the last 30).
    pub earnings: Vec<EarningView>,
    /// Subscriptions, newest first.
    pub subscriptions: Vec<Subscription>,
    /// Redemptions, newest first.
    pub redemptions: Vec<Redemption>,
}

/// One day's earnings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EarningView {
    /// The day, `yyyy-MM-dd`.
    pub day: String,
    /// Credited as new units.
    pub amount: Money,
}

/// The caller's holding of a fund, with its earnings history.
#[utoipa::path(get, path = "/v1/funds/{id}/holding", tag = "funds",
    params(("id" = String, Path, description = "The fund")),
    responses((status = 200, body = HoldingView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn holding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HoldingView>, ApiError> {
    let fund = fund_of(&state, &id).await?;
    Ok(Json(holding_view(&state, &fund, caller.0.id).await?))
}

/// Earnings by day shown (newest first), and how far back the books are read for them.
const EARNINGS_SHOWN: usize = 30;
const HISTORY_READ: u32 = 200;

/// A person's holding as shown to them (the wallet's fund page uses it too): units from
/// their units account, earnings from its `FUND_EARNINGS` transfers.
pub async fn holding_view(
    state: &AppState,
    fund: &Fund,
    holder: Id,
) -> Result<HoldingView, ApiError> {
    let fund_id = fund.id;
    let account_id = units_account(holder, fund);
    let (holding, (subscribed, redeemed), (subscriptions, redemptions), account, history) = state
        .pool()
        .with_store(move |store| {
            let rows = store.read_sql(|sql| {
                Ok((
                    formica_store::fund::holding(sql, fund_id, holder)?,
                    formica_store::fund::net_in(sql, fund_id, holder)?,
                    formica_store::fund::activity(sql, fund_id, holder, 20)?,
                ))
            })?;
            let account = store.account(account_id)?;
            let history = store.history(&formica_store::HistoryQuery {
                account_id,
                from: None,
                before: None,
                limit: HISTORY_READ,
            })?;
            Ok((rows.0, rows.1, rows.2, account, history))
        })
        .await?;
    let holding = holding.unwrap_or_default();
    let money = |minor: u64| Money::new(minor, fund.currency);
    let units = account.map_or(0, |a| {
        u64::try_from(a.credits_posted + a.credits_pending - a.debits_posted).unwrap_or(u64::MAX)
    });
    let today = state.engine().settings().day(state.now());
    let used = if holding.instant_day == today {
        holding.instant_used
    } else {
        0
    };
    let earnings: Vec<EarningView> = history
        .iter()
        .filter(|t| t.code == transfer_kind::FUND_EARNINGS && t.credit_account_id == account_id)
        .take(EARNINGS_SHOWN)
        .map(|t| EarningView {
            day: time::format_day(t.user_data_64 as i64),
            amount: money(u64::try_from(t.amount).unwrap_or(u64::MAX)),
        })
        .collect();
    Ok(HoldingView {
        fund_id,
        units: money(units),
        pending: money(holding.pending),
        earned_total: money((units + redeemed).saturating_sub(subscribed)),
        last_earned: earnings.first().map(|e| (e.day.clone(), e.amount)),
        instant_left: money(fund.instant_limit.amount_minor.saturating_sub(used)),
        earnings,
        subscriptions,
        redemptions,
    })
}

/// A day's income to post.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncome {
    /// The day, `yyyy-MM-dd`: the day after the last one posted, once it is over.
    pub day: String,
    /// Income per 10,000 units, up to 4 decimals (`"0.9312"`).
    pub income: String,
}

/// Posts a finished day's income per 10,000 units (operators, or the fund's manager). The
/// manager's wallet pays the day's income in at once; the holders are credited within
/// seconds, in the batches that follow. A day is posted once: posting it again is refused.
#[utoipa::path(post, path = "/v1/funds/{id}/incomes", tag = "funds", request_body = NewIncome,
    params(("id" = String, Path, description = "The fund")),
    responses((status = 201, body = Fund), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_income(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<NewIncome>,
) -> Result<(StatusCode, Json<Fund>), ApiError> {
    let fund = fund_of(&state, &id).await?;
    if caller.operator().is_err() && caller.0.id != fund.manager_id {
        return Err(ApiError::new(
            "forbidden",
            "operators and the fund's manager only",
        ));
    }
    let day = time::parse_day(&body.value.day)
        .ok_or_else(|| ApiError::new("invalid_field", "a day, yyyy-MM-dd").field("day"))?;
    let income = Income::parse(body.value.income.trim())
        .map_err(|e| ApiError::new("invalid_field", e.to_string()).field("income"))?;
    let command = FundCommand::PostIncome {
        fund_id: fund.id,
        day,
        income,
    };
    let path = format!("/v1/funds/{}/incomes", fund.id);
    match submit(&state, &caller, None, &path, &body.digest, command).await? {
        Outcome::Fund(fund) => Ok((StatusCode::CREATED, Json(fund))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The holiday calendar: days besides weekends that are not business days.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holidays {
    /// The days, `yyyy-MM-dd`.
    pub days: Vec<String>,
}

impl Holidays {
    /// The days as days since 1970-01-01, sorted, each once; at most a year of them.
    pub fn days(&self) -> Result<Vec<i64>, ApiError> {
        if self.days.len() > 366 {
            return Err(ApiError::new("invalid_field", "at most 366 days").field("days"));
        }
        let mut days = Vec::with_capacity(self.days.len());
        for (index, text) in self.days.iter().enumerate() {
            days.push(time::parse_day(text).ok_or_else(|| {
                ApiError::new("invalid_field", "a day, yyyy-MM-dd").field(format!("days[{index}]"))
            })?);
        }
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }
}

/// Replaces the holiday calendar (operators only); confirmations and normal payouts still
/// open move to the business days of the new one.
#[utoipa::path(put, path = "/v1/holidays", tag = "funds", request_body = Holidays,
    responses((status = 200, body = Holidays), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_holidays(
    State(state): State<AppState>,
    caller: Caller,
    body: Body<Holidays>,
) -> Result<Json<Holidays>, ApiError> {
    caller.operator()?;
    let days = body.value.days()?;
    let command = FundCommand::SetHolidays { days };
    match submit(&state, &caller, None, "/v1/holidays", &body.digest, command).await? {
        Outcome::Holidays { days } => Ok(Json(Holidays {
            days: days.into_iter().map(time::format_day).collect(),
        })),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The holiday calendar.
#[utoipa::path(get, path = "/v1/holidays", tag = "funds",
    responses((status = 200, body = Holidays)), security(("bearer" = [])))]
pub async fn holidays(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Holidays>, ApiError> {
    let days = state.pool().read(formica_store::fund::holidays).await?;
    Ok(Json(Holidays {
        days: days.into_iter().map(time::format_day).collect(),
    }))
}
