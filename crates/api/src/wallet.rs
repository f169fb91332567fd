//! Wallets: balances, the bill list (every entry of the wallet's books), bank cards, top-ups
//! and withdrawals through the bank channel, and transfers between people.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::products::{TransferReceipt, transfer_kind};
use formica_core::wallet::{Movement, WalletCommand, wallet_account};
use formica_core::{Currency, Id, Money, Outcome, ProductCommand};
use formica_engine::bank::BankRequest;
use formica_ledger::TransferFlags;
use formica_store::HistoryQuery;
use formica_store::people::{self, BankCard, Secret};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::body::Body;
use crate::error::{ApiError, ErrorBody, money_error};
use crate::idempotency;
use crate::page::{Page, PageQuery};

/// An amount in a request: `{"amount": "88.88", "currency": "CNY"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountInput {
    /// A decimal string with at most the currency's decimals.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
}

impl AmountInput {
    /// The amount, above zero, exactly.
    pub fn money(&self, field: &str) -> Result<Money, ApiError> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|error| money_error(error, field))?;
        let money =
            Money::parse(&self.amount, currency).map_err(|error| money_error(error, field))?;
        if money.amount_minor == 0 {
            return Err(
                ApiError::new("amount_not_positive", "the amount must be above zero").field(field),
            );
        }
        Ok(money)
    }
}

/// Checks the caller's payment PIN.
pub async fn check_pin(state: &AppState, caller: &Caller, pin: &str) -> Result<(), ApiError> {
    auth::check_secret(state, &caller.0, Secret::Pin, pin).await
}

/// What identifies a request for its idempotency key.
pub fn fingerprint(method: &str, path: &str, digest: &str) -> String {
    format!("{method} {path} {digest}")
}

/// A wallet's balance in one currency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Balance {
    /// The currency.
    pub currency: Currency,
    /// What can be spent now.
    pub available: Money,
    /// Held: paid into escrow or reserved by a withdrawal, not yet released.
    pub held: Money,
    /// On its way in: escrow payments for the person's sales, not yet released to them.
    pub incoming: Money,
}

/// The wallet's balances.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Wallet {
    /// One per currency the person holds.
    pub balances: Vec<Balance>,
}

/// The caller's balances.
#[utoipa::path(get, path = "/v1/wallet", tag = "wallet",
    responses((status = 200, body = Wallet), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn balances(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Wallet>, ApiError> {
    let id = user.id;
    let accounts = state
        .pool()
        .with_store(move |store| {
            let mut found = Vec::new();
            for currency in Currency::all() {
                if let Some(account) = store.account(wallet_account(id, *currency))? {
                    found.push((*currency, account));
                }
            }
            Ok(found)
        })
        .await?;
    let money =
        |minor: u128, currency| Money::new(u64::try_from(minor).unwrap_or(u64::MAX), currency);
    let balances = accounts
        .into_iter()
        .map(|(currency, account)| Balance {
            currency,
            available: money(
                u128::try_from(account.available().max(0)).unwrap_or(0),
                currency,
            ),
            held: money(account.debits_pending, currency),
            incoming: money(account.credits_pending, currency),
        })
        .collect();
    Ok(Json(Wallet { balances }))
}

/// One line of the bill list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// The entry's position in the books (also its cursor).
    pub id: Id,
    /// When (nanoseconds since the epoch).
    pub at: u64,
    /// `top_up`, `withdrawal`, `transfer`, `trade_payment`, `refund` (a shop's refund) or
    /// `payout` (a shop paying a person).
    pub kind: String,
    /// `in` or `out`.
    pub direction: String,
    /// `held` (escrow or a withdrawal in flight), `released` (a hold paid out), `returned`
    /// (a hold given back) or `done`.
    pub status: String,
    /// How much.
    pub amount: Money,
}

/// `?currency=CNY&cursor=...&limit=...`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The wallet's currency (default CNY).
    pub currency: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100.
    pub limit: Option<u32>,
}

/// The bill list: every movement of the wallet's money, newest first.
#[utoipa::path(get, path = "/v1/wallet/entries", tag = "wallet", params(EntriesQuery),
    responses((status = 200, body = Page<Entry>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn entries(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(query): Query<EntriesQuery>,
) -> Result<Json<Page<Entry>>, ApiError> {
    let currency: Currency = query
        .currency
        .as_deref()
        .unwrap_or("CNY")
        .parse()
        .map_err(|error| money_error(error, "currency"))?;
    let page = PageQuery {
        cursor: query.cursor,
        limit: query.limit,
    };
    let before = page.before()?.map(|id| id.0);
    let limit = page.limit();
    let account = wallet_account(user.id, currency);
    let transfers = state
        .pool()
        .with_store(move |store| {
            store.history(&HistoryQuery {
                account_id: account,
                from: None,
                before,
                limit,
            })
        })
        .await?;
    let entries = transfers
        .iter()
        .map(|t| entry(t, account, currency))
        .collect();
    Ok(Json(Page::new(entries, limit, |e: &Entry| e.id)))
}

/// A transfer of the wallet's books as a line of its bill list.
pub fn entry(t: &formica_ledger::Transfer, account: u128, currency: Currency) -> Entry {
    let kind = match t.code {
        transfer_kind::TOP_UP => "top_up",
        transfer_kind::WITHDRAWAL => "withdrawal",
        transfer_kind::TRANSFER => "transfer",
        transfer_kind::TRADE_PAYMENT => "trade_payment",
        transfer_kind::REFUND => "refund",
        transfer_kind::MERCHANT_PAYOUT => "payout",
        _ => "other",
    };
    let status = if t.flags.contains(TransferFlags::PENDING) {
        "held"
    } else if t.flags.contains(TransferFlags::POST_PENDING_TRANSFER) {
        "released"
    } else if t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
        "returned"
    } else {
        "done"
    };
    Entry {
        id: Id(t.timestamp),
        at: t.timestamp,
        kind: kind.to_owned(),
        direction: if t.debit_account_id == account {
            "out"
        } else {
            "in"
        }
        .to_owned(),
        status: status.to_owned(),
        amount: Money::new(u64::try_from(t.amount).unwrap_or(u64::MAX), currency),
    }
}

/// A card to link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    /// The bank's name.
    pub bank: String,
    /// The card number, 12 to 19 digits (only the last four are kept).
    pub number: String,
    /// The holder's name.
    pub holder: String,
}

/// Links a bank card for top-ups and withdrawals. With the simulated bank, a card ending in
/// 0002 is declined and one ending in 0003 never answers.
#[utoipa::path(post, path = "/v1/cards", tag = "wallet", request_body = NewCard,
    responses((status = 201, body = BankCard), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_card(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body<NewCard>,
) -> Result<(StatusCode, Json<BankCard>), ApiError> {
    let NewCard {
        bank,
        number,
        holder,
    } = body.value;
    if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new("invalid_field", "12 to 19 digits").field("number"));
    }
    for (name, value) in [("bank", &bank), ("holder", &holder)] {
        if value.trim().is_empty() || value.len() > 64 {
            return Err(ApiError::new("invalid_field", "1 to 64 characters").field(name));
        }
    }
    let card = BankCard {
        id: crate::people::new_id(state.now()),
        user_id: user.id,
        bank,
        last4: number[number.len() - 4..].to_owned(),
        holder,
        created_at: state.now(),
    };
    let row = card.clone();
    state
        .pool()
        .write(move |sql| people::add_card(sql, &row))
        .await?;
    Ok((StatusCode::CREATED, Json(card)))
}

/// The caller's cards.
#[utoipa::path(get, path = "/v1/cards", tag = "wallet",
    responses((status = 200, body = Vec<BankCard>)), security(("bearer" = [])))]
pub async fn cards(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<BankCard>>, ApiError> {
    let id = user.id;
    Ok(Json(
        state.pool().read(move |sql| people::cards(sql, id)).await?,
    ))
}

/// Money in from, or out to, a linked card.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankMove {
    /// The linked card.
    pub card_id: Id,
    /// How much.
    pub amount: AmountInput,
    /// The payment PIN.
    pub pin: String,
}

/// Tops the wallet up from a card. The money arrives when the bank answers (see the
/// movement's status, or the `top_up.succeeded` webhook).
#[utoipa::path(post, path = "/v1/top-ups", tag = "wallet", request_body = BankMove,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 202, body = Movement), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn top_up(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<BankMove>,
) -> Result<(StatusCode, Json<Movement>), ApiError> {
    bank_move(state, caller, headers, body, true).await
}

/// Withdraws to a card: the money is held at once and leaves when the bank pays out (or comes
/// back if the bank fails).
#[utoipa::path(post, path = "/v1/withdrawals", tag = "wallet", request_body = BankMove,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 202, body = Movement), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn withdraw(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<BankMove>,
) -> Result<(StatusCode, Json<Movement>), ApiError> {
    bank_move(state, caller, headers, body, false).await
}

async fn bank_move(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<BankMove>,
    top_up: bool,
) -> Result<(StatusCode, Json<Movement>), ApiError> {
    let key = idempotency::key(&headers, true)?;
    let amount = body.value.amount.money("amount")?;
    let user = caller.0.id;
    let card_id = body.value.card_id;
    let card = state
        .pool()
        .read(move |sql| people::card(sql, user, card_id))
        .await?
        .ok_or_else(|| ApiError::not_found("card_not_found").field("card_id"))?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let (path, command) = if top_up {
        (
            "/v1/top-ups",
            WalletCommand::StartTopUp {
                user_id: user,
                amount,
                card_id,
            },
        )
    } else {
        (
            "/v1/withdrawals",
            WalletCommand::StartWithdrawal {
                user_id: user,
                amount,
                card_id,
            },
        )
    };
    let outcome = idempotency::submit(
        &state,
        user,
        key,
        fingerprint("POST", path, &body.digest),
        ProductCommand::Wallet(command),
    )
    .await?;
    let Outcome::Movement(movement) = outcome else {
        return Err(ApiError::internal(&"a bank move answers a movement"));
    };
    if movement.is_open() {
        // Bank requests are idempotent by movement id: a retried request asks again.
        state.send_to_bank(BankRequest {
            movement_id: movement.id,
            kind: movement.kind,
            amount: movement.amount,
            card_last4: card.last4,
        });
    }
    Ok((StatusCode::ACCEPTED, Json(movement)))
}

/// The caller's top-ups and withdrawals, newest first.
#[utoipa::path(get, path = "/v1/movements", tag = "wallet", params(PageQuery),
    responses((status = 200, body = Page<Movement>)), security(("bearer" = [])))]
pub async fn movements(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Movement>>, ApiError> {
    let (before, limit, id) = (page.before()?, page.limit(), user.id);
    let list = state
        .pool()
        .read(move |sql| formica_store::wallet::movements(sql, id, before, limit))
        .await?;
    Ok(Json(Page::new(list, limit, |m: &Movement| m.id)))
}

/// One of the caller's top-ups or withdrawals.
#[utoipa::path(get, path = "/v1/movements/{id}", tag = "wallet",
    params(("id" = String, Path, description = "The movement")),
    responses((status = 200, body = Movement), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn movement(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Movement>, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("movement_not_found"))?;
    let owner = user.id;
    state
        .pool()
        .read(move |sql| formica_store::wallet::movement(sql, owner, id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("movement_not_found"))
}

/// Who to pay: exactly one of `user_id` or `login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonRef {
    /// The person's id.
    pub user_id: Option<Id>,
    /// The person's phone number or email.
    pub login: Option<String>,
}

impl PersonRef {
    /// The person's id.
    pub async fn resolve(&self, state: &AppState, field: &str) -> Result<Id, ApiError> {
        match (&self.user_id, &self.login) {
            (Some(id), None) => Ok(*id),
            (None, Some(login)) => {
                let login = crate::people::normalize_login(login)
                    .map_err(|_| ApiError::not_found("payee_not_found").field(field))?;
                state
                    .pool()
                    .read(move |sql| people::user_by_login(sql, &login))
                    .await?
                    .map(|user| user.id)
                    .ok_or_else(|| ApiError::not_found("payee_not_found").field(field))
            }
            _ => Err(
                ApiError::new("invalid_field", "give exactly one of user_id or login").field(field),
            ),
        }
    }
}

/// A transfer to a friend.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// The payee.
    pub to: PersonRef,
    /// How much.
    pub amount: AmountInput,
    /// A note the payee sees (up to 140 characters).
    #[serde(default)]
    pub note: String,
    /// The payment PIN.
    pub pin: String,
}

/// Pays a friend at once, within the daily limit of the caller's identity level.
#[utoipa::path(post, path = "/v1/transfers", tag = "wallet", request_body = NewTransfer,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 201, body = TransferReceipt), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewTransfer>,
) -> Result<(StatusCode, Json<TransferReceipt>), ApiError> {
    let key = idempotency::key(&headers, true)?;
    let amount = body.value.amount.money("amount")?;
    if body.value.note.chars().count() > 140 {
        return Err(ApiError::new("invalid_field", "at most 140 characters").field("note"));
    }
    let to = body.value.to.resolve(&state, "to").await?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = ProductCommand::Wallet(WalletCommand::Transfer {
        from_user_id: caller.0.id,
        to_user_id: to,
        amount,
        note: body.value.note.clone(),
    });
    let fingerprint = fingerprint("POST", "/v1/transfers", &body.digest);
    match idempotency::submit(&state, caller.0.id, key, fingerprint, command).await? {
        Outcome::Transfer(receipt) => Ok((StatusCode::CREATED, Json(receipt))),
        _ => Err(ApiError::internal(&"a transfer answers a receipt")),
    }
}

/// Transfers the caller sent or received, newest first.
#[utoipa::path(get, path = "/v1/transfers", tag = "wallet", params(PageQuery),
    responses((status = 200, body = Page<TransferReceipt>)), security(("bearer" = [])))]
pub async fn transfers(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<TransferReceipt>>, ApiError> {
    let (before, limit, id) = (page.before()?, page.limit(), user.id);
    let list = state
        .pool()
        .read(move |sql| formica_store::wallet::transfers(sql, id, before, limit))
        .await?;
    Ok(Json(Page::new(list, limit, |t: &TransferReceipt| t.id)))
}

/// One transfer the caller sent or received.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "wallet",
    params(("id" = String, Path, description = "The transfer")),
    responses((status = 200, body = TransferReceipt), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn transfer_one(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<TransferReceipt>, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::new("not_found", "not found"))?;
    let owner = user.id;
    state
        .pool()
        .read(move |sql| formica_store::wallet::transfer(sql, owner, id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new("not_found", "not found"))
}
